// The API behind the proxies in bench/upstream-proxy.sh: node's http server on a free loopback
// port, 200 with a small JSON body for every request. Prints `LISTENING <port>` once ready.
import { createServer } from 'node:http';

const body = Buffer.from('{"ok":true,"from":"bench"}\n');
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
});
// Keep idle proxy connections longer than wrk's runs so pools are not cut mid-measurement.
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`LISTENING ${server.address().port}\n`));
