import { access, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export type NicKind = 'wired' | 'wireless' | 'virtual';

/** What /sys/class/net/<name> shows about one interface. */
export interface NicFacts {
  name: string;
  /** A `device` link: backed by hardware (PCI, USB, virtio of a VM host). */
  hasDevice: boolean;
  /** A `wireless` folder or a `phy80211` link. */
  isWireless: boolean;
  /** ARPHRD type: 1 Ethernet, 772 loopback. */
  type: number;
  /** A `bridge` folder, `tun_flags`, or a veth peer. */
  isBridge: boolean;
  isTun: boolean;
}

export interface NicInfo {
  name: string;
  kind: NicKind;
  mac: string | null;
  mtu: number | null;
  /** operstate: up, down, unknown, ... */
  state: string;
}

const ARPHRD_LOOPBACK = 772;

/** wireless (has wireless/phy80211), virtual (no device link, loopback, bridge, tun), else wired. Pure. */
export function classifyNic(facts: NicFacts): NicKind {
  if (facts.isWireless) return 'wireless';
  if (!facts.hasDevice || facts.type === ARPHRD_LOOPBACK || facts.isBridge || facts.isTun) return 'virtual';
  return 'wired';
}

/** Lists the host's network interfaces from /sys/class/net. */
export async function listNics(root = '/sys/class/net'): Promise<NicInfo[]> {
  const names = (await readdir(root)).sort();
  return Promise.all(
    names.map(async (name) => {
      const dir = join(root, name);
      const facts: NicFacts = {
        name,
        hasDevice: await exists(join(dir, 'device')),
        isWireless: (await exists(join(dir, 'wireless'))) || (await exists(join(dir, 'phy80211'))),
        type: Number(await readText(join(dir, 'type'))),
        isBridge: await exists(join(dir, 'bridge')),
        isTun: await exists(join(dir, 'tun_flags')),
      };
      const mtu = Number(await readText(join(dir, 'mtu')));
      return {
        name,
        kind: classifyNic(facts),
        mac: (await readText(join(dir, 'address'))) || null,
        mtu: Number.isFinite(mtu) && mtu > 0 ? mtu : null,
        state: (await readText(join(dir, 'operstate'))) || 'unknown',
      };
    }),
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function readText(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return '';
  }
}
