import { request, type Agent as HttpAgent } from 'node:http';
import type { Socket } from 'node:net';

/**
 * POST a JSON body to the agent's predict API on loopback; resolves with the status once the reply is read.
 * `onSocket` is told which socket the request got (the open-loop clients count new connections).
 */
export function postPredict(agent: HttpAgent, port: number, body: string, onSocket?: (s: Socket) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/v1/predict', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    if (onSocket) req.once('socket', onSocket);
    req.on('error', reject);
    req.end(body);
  });
}
