// The TCP balancer of the HA tests (startBalancer in ha-cluster.ts), run as its own process: what it
// stands in for (a Kubernetes Service: kube-proxy rules in the kernel) never waits for the test's
// busy event loop, so a callout is not delayed by the load generator sharing a process with it.
// The parent sends the current backends ({ backends: number[] }); each accepted connection is
// reported ({ accepted: n }). Like kube-proxy, a connection goes to the next backend round robin,
// and when that backend refuses, the client's connection is reset (no second choice).
import net from 'node:net';

let backends: number[] = [];
let next = 0;
let accepted = 0;
const sockets = new Set<net.Socket>();

process.on('message', (m: { backends?: number[] }) => {
  if (m.backends) backends = m.backends;
});
// The parent going away (test end, crash) ends the balancer with it.
process.on('disconnect', () => process.exit(0));

const server = net.createServer((client) => {
  accepted++;
  process.send?.({ accepted });
  sockets.add(client);
  client.on('close', () => sockets.delete(client));
  client.on('error', () => client.destroy());
  const port = backends.length ? backends[next++ % backends.length] : undefined;
  if (port === undefined) return void client.resetAndDestroy();
  client.pause();
  const up = net.connect(port, '127.0.0.1');
  sockets.add(up);
  let connected = false;
  // An orderly close (FIN) is passed on as one, after the bytes in flight: pipe() ends the other
  // side. An abortive close (reset, error, a refused connect) resets the other side at once.
  up.on('close', (hadError) => {
    sockets.delete(up);
    if (!connected || hadError) client.resetAndDestroy();
  });
  up.on('error', () => up.destroy());
  up.once('connect', () => {
    connected = true;
    client.on('close', (hadError) => (hadError ? up.resetAndDestroy() : up.end()));
    client.pipe(up);
    up.pipe(client);
    client.resume();
  });
});
server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as net.AddressInfo).port }));
process.on('SIGTERM', () => {
  for (const s of sockets) s.destroy();
  server.close(() => process.exit(0));
});
