/**
 * Capability names as config.json writes them (process.capabilities), and their numbers
 * (include/uapi/linux/capability.h; capabilities(7)). The names are matched exactly, upper
 * case with the CAP_ prefix, as runc matches them.
 */
import { readFileSync } from 'node:fs';

/** Every capability Linux defines, by number (capability.h, up to Linux 6.x). */
export const CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

const NUMBERS = new Map(CAPABILITIES.map((name, i) => [name, i]));

/** The number of a capability name; undefined for a name Linux does not define. */
export function capabilityNumber(name: string): number | undefined {
  return NUMBERS.get(name);
}

let lastCap: number | undefined;

/**
 * The highest capability this kernel has (/proc/sys/kernel/cap_last_cap, capabilities(7)),
 * read once. Without /proc: the highest capability.h defines.
 */
export function capLastCap(): number {
  if (lastCap === undefined) {
    try {
      lastCap = Number.parseInt(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'), 10);
    } catch {
      lastCap = NaN;
    }
    if (!Number.isInteger(lastCap)) lastCap = CAPABILITIES.length - 1;
  }
  return lastCap;
}
