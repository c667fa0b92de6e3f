/** `internvl serve`: an OpenAI-compatible HTTP endpoint for one model. */
import { Command } from 'commander';
import { serve } from '../server/server.js';
import { reportError } from './errors.js';
import { loadModelWithProgress } from './load.js';
import { addModelFlags, loadOptionsFromFlags } from './run.js';
import { intOption } from './options.js';

interface ServeFlags {
  model: string;
  backend: 'cpu' | 'cuda' | 'auto';
  dtype?: 'bf16' | 'int8';
  int8Scheme?: 'per-channel' | 'per-group-128';
  host: string;
  port: number;
  apiKey?: string;
  allowLocalFiles?: string;
  maxQueue: number;
  verbose?: boolean;
}

export function serveCommand(): Command {
  const cmd = new Command('serve')
    .description('serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/models, /health) and Prometheus /metrics')
    .option('--host <host>', 'address to bind (loopback unless you mean otherwise)', '127.0.0.1')
    .option('--port <n>', 'port', intOption('--port', 0, 65535), 8000)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" (default: $INTERNVL_API_KEY if set)')
    .option('--allow-local-files <dir>', 'let image_url name local files inside this directory')
    .option('--max-queue <n>', 'requests running or waiting at most (more get HTTP 429)', intOption('--max-queue', 1, 1 << 16), 64);
  addModelFlags(cmd);
  cmd.addHelpText('after', '\nExample:\n  $ internvl serve -m ./InternVL2-8B --port 8000\n  $ curl http://127.0.0.1:8000/v1/models');
  cmd.action(async (flags: ServeFlags) => {
    try {
      const { model } = await loadModelWithProgress(flags.model, loadOptionsFromFlags(flags), {});
      const apiKey = flags.apiKey ?? process.env.INTERNVL_API_KEY;
      const running = await serve(model, {
        host: flags.host,
        port: flags.port,
        maxQueue: flags.maxQueue,
        ...(apiKey ? { apiKey } : {}),
        ...(flags.allowLocalFiles ? { allowLocalFiles: flags.allowLocalFiles } : {}),
      });
      process.stderr.write(`internvl: serving ${flags.model} at ${running.url}/v1 (${model.info.backend})\n`);
      const stop = async () => {
        process.stderr.write('internvl: shutting down (finishing requests in flight)\n');
        await running.close();
        model.dispose();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    } catch (e) {
      reportError(e, flags.verbose ?? false);
    }
  });
  return cmd;
}
