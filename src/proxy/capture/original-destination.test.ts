import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import {
  decodeSockaddr,
  originalDestination,
  originalDestinationUnavailable,
} from './original-destination.ts';

describe('original destination', () => {
  it('decodes sockaddr_in and sockaddr_in6 (port in network order)', () => {
    const v4 = Buffer.alloc(16);
    v4.writeUInt16LE(2, 0);
    v4.writeUInt16BE(8080, 2);
    Buffer.from([10, 96, 0, 10]).copy(v4, 4);
    assert.deepEqual(decodeSockaddr(v4), { family: 4, port: 8080, address: '10.96.0.10' });
    const v6 = Buffer.alloc(28);
    v6.writeUInt16LE(10, 0);
    v6.writeUInt16BE(443, 2);
    Buffer.from('fd000010009600000000000000000a00', 'hex').copy(v6, 8);
    assert.deepEqual(decodeSockaddr(v6), { family: 6, port: 443, address: 'fd00:10:96::a00' });
    const mapped = Buffer.alloc(28);
    mapped.writeUInt16LE(10, 0);
    Buffer.from('00000000000000000000ffff0a60000a', 'hex').copy(mapped, 8);
    assert.equal(decodeSockaddr(mapped)?.address, '::ffff:10.96.0.10');
    const noZeros = Buffer.alloc(28);
    noZeros.writeUInt16LE(10, 0);
    Buffer.from('00010002000300040005000600070008', 'hex').copy(noZeros, 8);
    assert.equal(decodeSockaddr(noZeros)?.address, '1:2:3:4:5:6:7:8');
    assert.equal(decodeSockaddr(Buffer.alloc(16)), undefined, 'AF_UNSPEC');
  });

  it(
    'a connection that was not redirected has no original destination',
    { skip: originalDestinationUnavailable() },
    async () => {
      const server = net.createServer();
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
      const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      const s = await accepted;
      // Tracked or not, the kernel answers the listener's own address (or ENOENT): not redirected.
      assert.equal(originalDestination(s), undefined);
      client.destroy();
      s.destroy();
      server.close();
    },
  );
});
