/**
 * `internvl pull MODEL`: a Hub model into the local cache (huggingface_hub's layout), only
 * the files the runtime reads, several at a time, resumable and verified, with a progress
 * bar (bytes, speed, ETA) on a TTY, plain lines elsewhere and nothing but one JSON object
 * with --json. Prints the snapshot directory on stdout.
 */
import { Command } from 'commander';
import { type PullProgress, pullModel } from '../hub/pull.js';
import { reportError } from './errors.js';
import { intOption } from './options.js';
import { type Progress, createProgress, formatBytes } from './progress.js';

/** A download bar fed by PullProgress: this run's bytes (not what was cached), files as the detail. */
export function downloadProgress(label: string, options: { enabled: boolean; quietMs?: number }) {
  let bar: Progress | undefined;
  let last: PullProgress | undefined;
  return {
    onProgress(p: PullProgress): void {
      last = p;
      if (p.bytesAtStart >= p.bytesTotal) return; // all cached: nothing to show
      bar ??= createProgress({ label, total: p.bytesTotal - p.bytesAtStart, unit: 'bytes', enabled: options.enabled, quietMs: options.quietMs ?? 0 });
      bar.update(Math.max(0, p.bytesDone - p.bytesAtStart), `${p.filesDone}/${p.filesTotal} files`);
    },
    /** Ends the bar (call once the download is over, or failed). */
    done(): void {
      if (bar && last) bar.done(`${last.filesDone}/${last.filesTotal} files`);
      bar = undefined;
    },
  };
}

interface PullFlags {
  revision?: string;
  concurrency: number;
  cacheDir?: string;
  json?: boolean;
  verbose?: boolean;
}

export function pullCommand(): Command {
  return new Command('pull')
    .description('download a Hub model into the local Hugging Face cache (only the files the runtime reads; resumable, verified)')
    .argument('<model>', 'Hub model id: org/name or org/name@revision (branch, tag or commit)')
    .option('--revision <rev>', 'branch, tag or commit to pull (same as MODEL@rev)')
    .option('--concurrency <n>', 'files downloaded at once', intOption('--concurrency', 1, 64), 8)
    .option('--cache-dir <dir>', 'cache folder (default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)')
    .option('--json', 'print one JSON object {repo, revision, commit, dir, files, bytesTotal, bytesFetched, ms} and nothing else')
    .option('--verbose', 'print stacks on errors')
    .addHelpText(
      'after',
      `
Environment:
  HF_TOKEN          access token for gated or private models (else the saved login, $HF_HOME/token)
  HF_ENDPOINT       Hub URL (a mirror or a private Hub; default https://huggingface.co)
  HF_HUB_CACHE      cache folder (shared with transformers / huggingface_hub)
  HF_HUB_OFFLINE=1  never use the network: report what the cache holds

An interrupted pull (Ctrl-C, a dropped connection) resumes where it stopped when run again.

Examples:
  $ internvl pull OpenGVLab/InternVL2-1B
  $ internvl pull OpenGVLab/InternVL2-8B@main --json
  $ internvl run -m OpenGVLab/InternVL2-1B -i photo.jpg "Describe this image."`,
    )
    .action(async (model: string, flags: PullFlags) => {
      try {
        const ac = new AbortController();
        process.once('SIGINT', () => ac.abort());
        const start = performance.now();
        const progress = downloadProgress(`downloading ${model}`, { enabled: !flags.json });
        let result;
        try {
          result = await pullModel(model, {
            concurrency: flags.concurrency,
            signal: ac.signal,
            onProgress: progress.onProgress,
            ...(flags.revision !== undefined ? { revision: flags.revision } : {}),
            ...(flags.cacheDir !== undefined ? { cacheDir: flags.cacheDir } : {}),
          });
        } finally {
          progress.done();
        }
        const ms = Math.round(performance.now() - start);
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ ...result, ms })}\n`);
          return;
        }
        const fetched = result.fromCache
          ? 'offline, from the cache'
          : result.bytesFetched > 0
            ? `${formatBytes(result.bytesFetched)} downloaded`
            : 'all already cached';
        process.stderr.write(
          `internvl: ${result.repo}@${result.revision} (commit ${result.commit.slice(0, 12)}): ${result.files.length} files, ${formatBytes(result.bytesTotal)} (${fetched}) in ${(ms / 1000).toFixed(1)} s\n`,
        );
        process.stdout.write(`${result.dir}\n`);
      } catch (e) {
        reportError(e, flags.verbose ?? false);
      }
    });
}
