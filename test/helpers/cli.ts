import { main } from '../../src/cli/main';

/** Runs the CLI in-process, capturing what it prints and its exit code. */
export async function cli(args: string[], signal?: AbortSignal): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => err.push(s) }, signal);
  return { code, out: out.join('\n'), err: err.join('\n') };
}
