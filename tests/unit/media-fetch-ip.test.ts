/**
 * The address classifier of remote media fetching: literal forms of IPv4 (shorthand, hex, octal,
 * decimal) and IPv6 (compressed, mapped, embedded IPv4, zones), the special ranges refused, and
 * CIDR matching for the allow-list.
 */
import { describe, expect, it } from 'vitest';
import { formatIp, inCidr, parseCidr, parseIp, parseIPv4, parseIPv6, specialRange } from '../../edge-node/server/media-fetch.ts';

const v4 = (s: string) => {
  const ip = parseIPv4(s);
  return ip ? formatIp(ip) : null;
};
const judge = (s: string) => {
  const ip = parseIp(s);
  if (!ip) throw new Error(`not an IP: ${s}`);
  return specialRange(ip);
};

describe('parseIPv4: the forms inet_aton and URL hosts accept', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['127.0.1', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['0X7F.1', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['017700000001', '127.0.0.1'],
    ['0x7f.0.0.0x1', '127.0.0.1'],
    ['10.0.0.1.', '10.0.0.1'],
    ['0', '0.0.0.0'],
    ['0x', '0.0.0.0'],
    ['3232235777', '192.168.1.1'],
    ['8.8.8.8', '8.8.8.8'],
    ['4294967295', '255.255.255.255'],
  ])('%s → %s', (text, want) => expect(v4(text)).toBe(want));

  it.each(['256.0.0.1', '1.2.3.4.5', '4294967296', '1.2.65536', '08.0.0.1', '0x1g', 'example.com', '', '1..2', '-1'])(
    'rejects %j',
    (text) => expect(parseIPv4(text)).toBeNull(),
  );
});

describe('parseIPv6', () => {
  const words = (s: string) => {
    const ip = parseIPv6(s);
    return ip ? formatIp(ip) : null;
  };
  it.each([
    ['::1', '0:0:0:0:0:0:0:1'],
    ['[::1]', '0:0:0:0:0:0:0:1'],
    ['::', '0:0:0:0:0:0:0:0'],
    ['0:0:0:0:0:0:0:1', '0:0:0:0:0:0:0:1'],
    ['fe80::1%eth0', 'fe80:0:0:0:0:0:0:1'],
    ['::ffff:127.0.0.1', '0:0:0:0:0:ffff:7f00:1'],
    ['::ffff:7f00:1', '0:0:0:0:0:ffff:7f00:1'],
    ['2001:db8::8:800:200c:417a', '2001:db8:0:0:8:800:200c:417a'],
    ['64:ff9b::10.0.0.1', '64:ff9b:0:0:0:0:a00:1'],
  ])('%s → %s', (text, want) => expect(words(text)).toBe(want));

  it.each(['1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::1', '::ffff:256.0.0.1', '::ffff:01.2.3.4', '1.2.3.4', ':::'])('rejects %j', (text) =>
    expect(parseIPv6(text)).toBeNull(),
  );
});

describe('specialRange: what is not the public internet', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['0x7f000001', 'loopback'],
    ['2130706433', 'loopback'],
    ['127.1', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.0.1', 'private'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['100.127.255.255', 'carrier-grade NAT'],
    ['169.254.169.254', 'link-local'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local'],
    ['febf::1', 'link-local'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456::1', 'unique-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['64:ff9b::127.0.0.1', 'loopback'],
    ['2002:7f00:1::', 'loopback'],
    ['2002:c0a8:101::1', 'private'],
    ['::127.0.0.1', 'IPv4-compatible'],
    ['2001:db8::1', 'documentation'],
    ['2001::1', 'IETF'],
    ['100::1', 'discard'],
    ['fec0::1', 'site-local'],
    ['4000::1', 'reserved'],
  ])('%s is %s', (text, why) => expect(judge(text)).toContain(why));

  it.each(['8.8.8.8', '1.1.1.1', '93.184.216.34', '172.32.0.1', '100.128.0.1', '192.169.0.1', '2606:4700::1111', '2a00:1450::1', '::ffff:8.8.8.8', '64:ff9b::8.8.8.8', '2002:808:808::1'])(
    '%s is public',
    (text) => expect(judge(text)).toBeNull(),
  );
});

describe('CIDRs', () => {
  it('matches within the prefix, per family', () => {
    const net = parseCidr('127.0.0.1/32')!;
    expect(inCidr(parseIp('127.0.0.1')!, net)).toBe(true);
    expect(inCidr(parseIp('127.0.0.2')!, net)).toBe(false);
    expect(inCidr(parseIp('::ffff:127.0.0.1')!, net)).toBe(false); // other family
    const ten = parseCidr('10.0.0.0/8')!;
    expect(inCidr(parseIp('10.255.1.2')!, ten)).toBe(true);
    expect(inCidr(parseIp('11.0.0.0')!, ten)).toBe(false);
    const odd = parseCidr('192.168.4.0/22')!;
    expect(inCidr(parseIp('192.168.7.255')!, odd)).toBe(true);
    expect(inCidr(parseIp('192.168.8.0')!, odd)).toBe(false);
    const ula = parseCidr('fd00::/8')!;
    expect(inCidr(parseIp('fd12::1')!, ula)).toBe(true);
    expect(inCidr(parseIp('fc12::1')!, ula)).toBe(false);
    expect(inCidr(parseIp('1.2.3.4')!, parseCidr('0.0.0.0/0')!)).toBe(true);
  });

  it('parses bare addresses as single hosts and rejects junk', () => {
    expect(parseCidr('::1')).toMatchObject({ prefix: 128 });
    expect(parseCidr('10.0.0.1')).toMatchObject({ prefix: 32 });
    for (const bad of ['10.0.0.0/33', '::/129', 'host/8', '10.0.0.0/8/1', '10.0.0.0/x']) expect(parseCidr(bad)).toBeNull();
  });
});
