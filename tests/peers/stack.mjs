#!/usr/bin/env node
// One launcher for the three authorization-server peers, all with the same tools/scopes
// contract (contract.mjs) and the same /test/stats:
//   --as oidc     mcp-stack.mjs: oidc-provider + an MCP SDK server (two ports)
//   --as sdk      sdk-as.mjs: the MCP SDK's mcpAuthRouter + requireBearerAuth (two ports)
//   --as workers  workers-oauth/run.mjs: @cloudflare/workers-oauth-provider in workerd (one
//                 origin for both; --mcp-port is ignored)
//
// Prints exactly one JSON line once the peer is ready:
//   {"as":"oidc|sdk|workers","issuer":"…","mcp":"…/mcp","stats":"<url of /test/stats>"}
// and stops its child on SIGTERM/SIGINT (exit 0), leaving no process behind. If the child exits
// on its own, so does the launcher, with the child's status (1 for a signal).

import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = `usage: node tests/peers/stack.mjs --as oidc|sdk|workers [options]
  --as-port N              authorization server port (workers: the worker's port); default 0
  --mcp-port M             MCP server port (oidc, sdk); default 0
  --access-token-ttl S     access token lifetime in seconds (default 3600)
  --cors-origin ORIGIN     answer CORS on the MCP server for this origin (repeatable)
  --interactive            login form + consent page instead of auto-approving
  --quiet                  no per-request log lines on stderr
  -- ARGS...               passed to the peer as they are (e.g. -- --dpop for oidc)
  -h, --help               this text`;

let args;
try {
  let positionals;
  ({ values: args, positionals } = parseArgs({
    options: {
      as: { type: 'string' },
      'as-port': { type: 'string', default: '0' },
      'mcp-port': { type: 'string', default: '0' },
      'access-token-ttl': { type: 'string', default: '3600' },
      'cors-origin': { type: 'string', multiple: true, default: [] },
      interactive: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: true,
  }));
  const dash = process.argv.indexOf('--');
  args.passthrough = dash < 0 ? [] : process.argv.slice(dash + 1);
  if (positionals.length !== args.passthrough.length) {
    throw new Error('unexpected argument (peer flags go after --)');
  }
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}\n`);
  process.exit(2);
}
if (args.help) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(0);
}
if (!['oidc', 'sdk', 'workers'].includes(args.as)) {
  process.stderr.write(`--as must be oidc, sdk or workers\n${USAGE}\n`);
  process.exit(2);
}

const here = import.meta.dirname;
const common = ['--access-token-ttl', args['access-token-ttl'], ...args['cors-origin'].flatMap((o) => ['--cors-origin', o])];
if (args.interactive) common.push('--interactive');
if (args.quiet) common.push('--quiet');
common.push(...args.passthrough);
const childArgs = {
  oidc: [path.join(here, 'mcp-stack.mjs'), '--as-port', args['as-port'], '--mcp-port', args['mcp-port'], ...common],
  sdk: [path.join(here, 'sdk-as.mjs'), '--as-port', args['as-port'], '--mcp-port', args['mcp-port'], ...common],
  workers: [path.join(here, 'workers-oauth', 'run.mjs'), '--port', args['as-port'], ...common],
}[args.as];

const child = spawn(process.execPath, childArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
let ready = false;
let buffer = '';
child.stdout.setEncoding('utf8');
child.stdout.on('data', (chunk) => {
  if (ready) return;
  buffer += chunk;
  const nl = buffer.indexOf('\n');
  if (nl < 0) return;
  let line;
  try {
    line = JSON.parse(buffer.slice(0, nl));
  } catch {
    process.stderr.write(`[stack] the ${args.as} peer printed no JSON ready line\n`);
    stop('error', 1);
    return;
  }
  ready = true;
  const stats = new URL('/test/stats', line.issuer).href;
  process.stdout.write(`${JSON.stringify({ as: args.as, issuer: line.issuer, mcp: line.mcp, stats })}\n`);
});

let stopping = false;
function stop(signal, code = 0) {
  if (stopping) return;
  stopping = true;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); }, 8000).unref();
    child.once('exit', () => process.exit(code));
  } else {
    process.exit(code);
  }
}
child.on('exit', (code, signal) => {
  if (stopping) return;
  process.stderr.write(`[stack] the ${args.as} peer exited (${signal ?? code})${ready ? '' : ' before it was ready'}\n`);
  process.exit(code ?? 1);
});
child.on('error', (err) => {
  process.stderr.write(`[stack] cannot start the ${args.as} peer: ${err.message}\n`);
  process.exit(1);
});
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
