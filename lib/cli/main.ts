#!/usr/bin/env node
/** The `internvl` command, entered through bin.cts (which sizes libuv's threadpool first). */
import { Command } from 'commander';
import { buildCommand } from './build.js';
import { chatCommand } from './chat.js';
import { infoCommand } from './info.js';
import { pullCommand } from './pull.js';
import { runCommand } from './run.js';
import { serveCommand } from './serve.js';
import { tokenizeCommand } from './tokenize.js';

const program = new Command('internvl')
  .description('Run InternVL2 vision-language models from Node.js')
  .addCommand(runCommand())
  .addCommand(chatCommand())
  .addCommand(pullCommand())
  .addCommand(serveCommand())
  .addCommand(tokenizeCommand())
  .addCommand(infoCommand())
  .addCommand(buildCommand())
  .showHelpAfterError('(add --help for usage)');

await program.parseAsync(process.argv);
