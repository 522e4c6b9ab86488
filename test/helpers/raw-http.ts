/** One HTTP/1.1 request with its request target sent byte for byte (no client normalises the path). */
import { connect } from 'node:net';

export interface RawAnswer { status: number; body: string }

export function rawRequest(httpUrl: string, method: string, target: string, headers: Record<string, string> = {}, body?: string): Promise<RawAnswer> {
  const u = new URL(httpUrl);
  const head = [`${method} ${target} HTTP/1.1`, `host: ${u.host}`, 'connection: close'];
  for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
  if (body !== undefined) head.push('content-type: application/json', `content-length: ${Buffer.byteLength(body)}`);
  const text = `${head.join('\r\n')}\r\n\r\n${body ?? ''}`;
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname);
    const parts: Buffer[] = [];
    s.setTimeout(30_000, () => s.destroy(new Error(`no answer to ${method} ${target}`)));
    s.on('data', (d) => parts.push(d));
    s.on('error', reject);
    s.on('close', () => {
      const all = Buffer.concat(parts).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(all);
      if (!m) { reject(new Error(`not an HTTP answer to ${method} ${target}: ${JSON.stringify(all.slice(0, 80))}`)); return; }
      resolve({ status: Number(m[1]), body: all.slice(all.indexOf('\r\n\r\n') + 4) });
    });
    s.end(text);
  });
}
