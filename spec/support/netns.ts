// A real network for specs: one Linux network namespace per host, joined by a bridge made for the
// run, with iptables inside each namespace to cut a host off. Everything lives in namespaces this
// module creates (the bridge in a namespace of its own; the test process reaches the hosts through
// one veth whose far end is in the bridge's namespace), so deleting the namespaces removes every
// link, address, route and firewall rule, and nothing of the machine's own network is touched.
// Needs root, `ip` (iproute2) and `iptables`; netnsUnavailable() says why not when they are missing.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, openSync } from 'node:fs';
import net from 'node:net';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { within } from '../fixtures/wait.ts';

const run = promisify(execFile);

/** Linux's IFNAMSIZ - 1: the longest interface name. */
export const interfaceNameBytesMax = 15;
/** Every command of the lab is bounded: a wedged `ip` must fail the spec, not hang it. */
const commandTimeoutMs = 10_000;

export interface LabHost {
  /** The host's short name (`a`): its namespace is `pm-a-SUFFIX`. */
  readonly name: string;
  readonly netns: string;
  /** Its end of the veth to the bridge. */
  readonly iface: string;
  /** Its IPv4 address, 10.99.SUBNET.N. */
  readonly ip: string;
}

export interface LabPlan {
  readonly suffix: string;
  readonly subnet: number;
  readonly bridgeNetns: string;
  readonly hosts: readonly LabHost[];
  /** The test process's end of the veth into the bridge's namespace, and its address. */
  readonly rootIface: string;
  readonly rootIp: string;
}

/** Names and addresses for a lab of `names` hosts: unique per run, interface names within IFNAMSIZ. */
export function planLab(names: readonly string[], suffix: string, subnet: number): LabPlan {
  if (!/^[a-z0-9]{1,8}$/.test(suffix)) throw new RangeError(`suffix '${suffix}': 1 to 8 of [a-z0-9]`);
  if (!Number.isInteger(subnet) || subnet < 1 || subnet > 254) throw new RangeError(`subnet ${subnet}`);
  if (names.length === 0 || names.length > 200) throw new RangeError(`${names.length} hosts`);
  const hosts = names.map((name, index) => {
    if (!/^[a-z0-9]{1,4}$/.test(name)) throw new RangeError(`host name '${name}': 1 to 4 of [a-z0-9]`);
    return {
      name,
      netns: `pm-${name}-${suffix}`,
      iface: `pm${name}${suffix}`,
      ip: `10.99.${subnet}.${index + 1}`,
    };
  });
  return {
    suffix,
    subnet,
    bridgeNetns: `pm-br-${suffix}`,
    hosts,
    rootIface: `pmr${suffix}`,
    rootIp: `10.99.${subnet}.254`,
  };
}

/** The peer (bridge-side) name of a host's or the root's veth. */
function bridgePort(iface: string): string {
  return `pb${iface.slice(2)}`;
}

/** The full path of `command` on the PATH or in the sbin directories (a user's PATH may lack them). */
function locate(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    if (!dir) continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return join(dir, command);
    } catch {}
  }
  return undefined;
}

interface Tools {
  ip: string;
  iptables: string;
  /** Optional: only the shaping of links (Lab.shape) needs it. */
  tc: string | undefined;
}

/**
 * `ip` and `iptables` by full path (what runs inside `ip netns exec` then does not depend on the
 * PATH either), or why not.
 */
function tools(): Tools | string {
  const ip = locate('ip');
  if (ip === undefined) return "no 'ip' (iproute2) on the PATH";
  const iptables = locate('iptables');
  if (iptables === undefined) return "no 'iptables' on the PATH";
  return { ip, iptables, tc: locate('tc') };
}

/**
 * Why a lab cannot be built here, or undefined when it can: not root, `ip` or `iptables`
 * missing, or the kernel refusing a network namespace (a container without CAP_SYS_ADMIN).
 */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces are Linux's (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root (network namespaces and iptables need root)';
  const found = tools();
  if (typeof found === 'string') return found;
  const probe = `pm-probe-${randomBytes(4).toString('hex')}`;
  try {
    await run(found.ip, ['netns', 'add', probe], { timeout: commandTimeoutMs });
  } catch (error) {
    return `cannot create a network namespace: ${firstLine(error)}`;
  }
  try {
    await run(found.ip, ['netns', 'exec', probe, found.iptables, '-S'], { timeout: commandTimeoutMs });
  } catch (error) {
    return `iptables does not work in a network namespace: ${firstLine(error)}`;
  } finally {
    await run(found.ip, ['netns', 'del', probe], { timeout: commandTimeoutMs }).catch(() => {});
  }
  return undefined;
}

function firstLine(error: unknown): string {
  const stderr = (error as { stderr?: unknown }).stderr;
  const text = typeof stderr === 'string' && stderr.trim() ? stderr : String(error);
  return text.trim().split('\n')[0] ?? '';
}

/**
 * Where a lab's 10.99.X.0/24 is drawn from: the specs' labs from 100–199, the chaos runs' from
 * 200–249 (chaos/cluster.ts), so that two kinds of run on one machine never draw the same.
 */
export const labSubnetsDefault: readonly [number, number] = [100, 199];

/** A 10.99.X.0/24 in `range` the machine does not route anywhere yet (another lab, a real network). */
async function freeSubnet(ip: string, range: readonly [number, number]): Promise<number> {
  const { stdout } = await run(ip, ['-4', '-o', 'addr', 'show'], { timeout: commandTimeoutMs });
  const { stdout: routes } = await run(ip, ['-4', 'route', 'show'], { timeout: commandTimeoutMs });
  const used = `${stdout}\n${routes}`;
  const [lo, hi] = range;
  for (let attempt = 0; attempt < 50; attempt++) {
    const subnet = lo + (randomBytes(2).readUInt16BE(0) % (hi - lo + 1));
    if (!used.includes(`10.99.${subnet}.`)) return subnet;
  }
  throw new Error(`no free 10.99.X.0/24 subnet with X in ${lo}–${hi}`);
}

/**
 * Why the queueing discipline `kind` (tc qdisc: `netem`, `tbf`) cannot be used here, or undefined
 * when it can: tried on a veth of a throwaway namespace (a kernel without sch_netem says
 * "Specified qdisc kind is unknown"). `args` are the qdisc's parameters for the trial.
 */
export async function qdiscUnavailable(kind: string, args: readonly string[]): Promise<string | undefined> {
  const found = tools();
  if (typeof found === 'string') return found;
  if (found.tc === undefined) return "no 'tc' (iproute2) on the PATH";
  const probe = `pm-probe-${randomBytes(4).toString('hex')}`;
  const ip = (...rest: string[]) => run(found.ip, rest, { timeout: commandTimeoutMs });
  try {
    await ip('netns', 'add', probe);
  } catch (error) {
    return `cannot create a network namespace: ${firstLine(error)}`;
  }
  try {
    await ip('-n', probe, 'link', 'add', 'pmq0', 'type', 'veth', 'peer', 'name', 'pmq1');
    await run(
      found.ip,
      ['netns', 'exec', probe, found.tc, 'qdisc', 'add', 'dev', 'pmq0', 'root', kind, ...args],
      {
        timeout: commandTimeoutMs,
      },
    );
    return undefined;
  } catch (error) {
    return `tc qdisc ${kind}: ${firstLine(error)}`;
  } finally {
    await ip('netns', 'del', probe).catch(() => {});
  }
}

export interface Lab extends LabPlan {
  /** Cut a host off: iptables DROP of everything in and out of its veth, in its namespace. */
  isolate(host: LabHost): Promise<void>;
  /** Remove isolate()'s rules. */
  heal(host: LabHost): Promise<void>;
  /**
   * One-way drop: packets from `from` never reach `to` (iptables DROP on `to`'s INPUT, matched by
   * source address), while `to`'s packets still reach `from`. Both directions: block twice.
   * Traffic from the test process (rootIp) is not touched. Idempotent.
   */
  block(from: LabHost, to: LabHost): Promise<void>;
  /** Remove block()'s rule (nothing when there is none). */
  unblock(from: LabHost, to: LabHost): Promise<void>;
  /** The one-way drops in place, as [from, to] host names. */
  blocked(): [from: string, to: string][];
  /**
   * A lossy host: each packet in or out of its veth dropped with `probability` (iptables'
   * statistic match, in its namespace; the test process's packets too). Replaces an earlier one.
   */
  lossy(host: LabHost, probability: number): Promise<void>;
  /**
   * A shaped host link: `tc qdisc replace … root KIND ARGS` (netem's delay, loss, reorder; tbf's
   * rate) on both ends of its veth, so that what it sends and what it receives pass the qdisc.
   */
  shape(host: LabHost, kind: string, args: readonly string[]): Promise<void>;
  /** Remove shape()'s qdiscs (nothing when there are none). */
  unshape(host: LabHost): Promise<void>;
  /** Remove every rule of isolate(), block() and lossy(), and every qdisc of shape(): the network is whole again. */
  healAll(): Promise<void>;
  /**
   * Start `argv` inside the host's namespace (its output appended to logFile); the pid is the
   * process's own. `env` replaces the environment (default: the test process's).
   */
  spawn(host: LabHost, argv: string[], logFile: string, cwd: string, env?: NodeJS.ProcessEnv): ChildProcess;
  /**
   * Stop every process spawned (SIGTERM, SIGCONT for a stopped one, SIGKILL after 5 s), then
   * delete the namespaces. Idempotent.
   */
  destroy(): Promise<void>;
}

/**
 * Build a lab of hosts `names` (namespaces, a bridge, veths, addresses) and check that the test
 * process reaches every host. On any failure what was built is removed before the error is thrown.
 */
export async function createLab(
  names: readonly string[],
  options: { subnets?: readonly [number, number] } = {},
): Promise<Lab> {
  const found = tools();
  if (typeof found === 'string') throw new Error(found);
  const plan = planLab(
    names,
    randomBytes(4).toString('hex').slice(0, 6),
    await freeSubnet(found.ip, options.subnets ?? labSubnetsDefault),
  );
  const namespaces: string[] = [];
  const children: ChildProcess[] = [];
  const rules = new Set<LabHost>();
  /** Lossy hosts and their rules' probability. */
  const losses = new Map<LabHost, number>();
  const shaped = new Set<LabHost>();
  /** One-way drops, keyed `from>to`. */
  const blocks = new Map<string, [LabHost, LabHost]>();
  let destroyed: Promise<void> | undefined;

  const ip = (...args: string[]) => run(found.ip, args, { timeout: commandTimeoutMs });
  const iptables = (host: LabHost, ...args: string[]) =>
    run(found.ip, ['netns', 'exec', host.netns, found.iptables, '-w', '5', ...args], {
      timeout: commandTimeoutMs,
    });
  const dropRules = (host: LabHost): string[][] => [
    ['INPUT', '-i', host.iface, '-j', 'DROP'],
    ['OUTPUT', '-o', host.iface, '-j', 'DROP'],
  ];
  const blockRule = (from: LabHost): string[] => ['INPUT', '-s', from.ip, '-j', 'DROP'];
  const lossRules = (host: LabHost, probability: number): string[][] => {
    const random = ['-m', 'statistic', '--mode', 'random', '--probability', String(probability)];
    return [
      ['INPUT', '-i', host.iface, ...random, '-j', 'DROP'],
      ['OUTPUT', '-o', host.iface, ...random, '-j', 'DROP'],
    ];
  };
  const tc = (netns: string, ...args: string[]) => {
    if (found.tc === undefined) throw new Error("no 'tc' (iproute2) on the PATH");
    return run(found.ip, ['netns', 'exec', netns, found.tc, ...args], { timeout: commandTimeoutMs });
  };
  /** Synchronous, for a process that is exiting: kill what is left and delete the namespaces. */
  const destroyNow = (): void => {
    for (const child of children)
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {}
      }
    for (const netns of namespaces.splice(0))
      try {
        execFileSync(found.ip, ['netns', 'del', netns], { timeout: commandTimeoutMs, stdio: 'ignore' });
      } catch {}
  };
  const onExit = (): void => destroyNow();
  const onSignal = (signal: NodeJS.Signals): void => {
    destroyNow();
    process.kill(process.pid, signal);
  };
  process.once('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      process.off('exit', onExit);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await Promise.all(children.map((child) => stopChild(child)));
      for (const netns of namespaces.splice(0)) await ip('netns', 'del', netns).catch(() => {});
      rules.clear();
      blocks.clear();
      losses.clear();
      shaped.clear();
    })();
    return destroyed;
  };

  try {
    const bridge = plan.bridgeNetns;
    await ip('netns', 'add', bridge);
    namespaces.push(bridge);
    await ip('-n', bridge, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', bridge, 'link', 'set', 'br0', 'up');
    for (const host of plan.hosts) {
      await ip('netns', 'add', host.netns);
      namespaces.push(host.netns);
      // Both ends made directly in their namespaces: nothing of the lab is ever in the root one
      // but the test process's own veth end, which goes with the bridge's namespace.
      const port = bridgePort(host.iface);
      await ip(
        'link',
        'add',
        host.iface,
        'netns',
        host.netns,
        'type',
        'veth',
        'peer',
        'name',
        port,
        'netns',
        bridge,
      );
      await ip('-n', bridge, 'link', 'set', port, 'master', 'br0', 'up');
      await ip('-n', host.netns, 'addr', 'add', `${host.ip}/24`, 'dev', host.iface);
      await ip('-n', host.netns, 'link', 'set', host.iface, 'up');
      await ip('-n', host.netns, 'link', 'set', 'lo', 'up');
    }
    const rootPort = bridgePort(plan.rootIface);
    await ip('link', 'add', plan.rootIface, 'type', 'veth', 'peer', 'name', rootPort, 'netns', bridge);
    await ip('-n', bridge, 'link', 'set', rootPort, 'master', 'br0', 'up');
    await ip('addr', 'add', `${plan.rootIp}/24`, 'dev', plan.rootIface);
    await ip('link', 'set', plan.rootIface, 'up');
    // Nothing listens yet: each host answers a connect with a refusal, at once, once it is reachable.
    for (const host of plan.hosts) await refused(host.ip);
  } catch (error) {
    await destroy();
    throw error;
  }

  const lab: Lab = {
    ...plan,
    async isolate(host) {
      for (const rule of dropRules(host)) await iptables(host, '-I', ...rule);
      rules.add(host);
    },
    async heal(host) {
      for (const rule of dropRules(host)) await iptables(host, '-D', ...rule);
      rules.delete(host);
    },
    async block(from, to) {
      const key = `${from.name}>${to.name}`;
      if (blocks.has(key)) return;
      await iptables(to, '-I', ...blockRule(from));
      blocks.set(key, [from, to]);
    },
    async unblock(from, to) {
      const key = `${from.name}>${to.name}`;
      if (!blocks.has(key)) return;
      await iptables(to, '-D', ...blockRule(from));
      blocks.delete(key);
    },
    blocked() {
      return [...blocks.values()].map(([from, to]) => [from.name, to.name]);
    },
    async lossy(host, probability) {
      if (!(probability > 0 && probability < 1)) throw new RangeError(`probability ${probability}`);
      const before = losses.get(host);
      if (before !== undefined)
        for (const rule of lossRules(host, before)) await iptables(host, '-D', ...rule);
      losses.delete(host);
      for (const rule of lossRules(host, probability)) await iptables(host, '-I', ...rule);
      losses.set(host, probability);
    },
    async shape(host, kind, args) {
      shaped.add(host);
      await tc(host.netns, 'qdisc', 'replace', 'dev', host.iface, 'root', kind, ...args);
      await tc(plan.bridgeNetns, 'qdisc', 'replace', 'dev', bridgePort(host.iface), 'root', kind, ...args);
    },
    async unshape(host) {
      if (!shaped.delete(host)) return;
      await tc(host.netns, 'qdisc', 'del', 'dev', host.iface, 'root').catch(() => {});
      await tc(plan.bridgeNetns, 'qdisc', 'del', 'dev', bridgePort(host.iface), 'root').catch(() => {});
    },
    async healAll() {
      for (const [from, to] of [...blocks.values()]) await lab.unblock(from, to);
      for (const host of [...rules]) await lab.heal(host);
      for (const [host, probability] of [...losses]) {
        for (const rule of lossRules(host, probability)) await iptables(host, '-D', ...rule);
        losses.delete(host);
      }
      for (const host of [...shaped]) await lab.unshape(host);
    },
    spawn(host, argv, logFile, cwd, env) {
      const log = openSync(logFile, 'a');
      // `ip netns exec` execs the command: the child's pid is the command's own.
      const child = spawn(found.ip, ['netns', 'exec', host.netns, ...argv], {
        cwd,
        stdio: ['ignore', log, log],
        ...(env ? { env } : {}),
      });
      closeSync(log);
      child.on('error', () => {});
      // Only the living are kept: a chaos run restarts monitors many times.
      child.once('exit', () => {
        const index = children.indexOf(child);
        if (index >= 0) children.splice(index, 1);
      });
      children.push(child);
      return child;
    },
    destroy,
  };
  return lab;
}

/** Resolves when a connect to port 9 of `ip` is refused (the host is up and reachable); bounded. */
async function refused(ip: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let outcome = '';
  while (Date.now() < deadline) {
    outcome = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: ip, port: 9 });
      const settle = (result: string) => {
        socket.destroy();
        resolve(result);
      };
      socket.once('connect', () => settle('connected'));
      socket.once('error', (error: NodeJS.ErrnoException) => settle(error.code ?? 'error'));
      socket.setTimeout(200, () => settle('no answer within 200 ms'));
    });
    if (outcome === 'ECONNREFUSED' || outcome === 'connected') return;
  }
  throw new Error(`${ip} not reachable from the test process within ${timeoutMs} ms (last: ${outcome})`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  // A stopped process (a chaos pause) acts on SIGTERM only once it runs again.
  child.kill('SIGCONT');
  const stopped = await within(exited, 'exit', 5000).then(
    () => true,
    () => false,
  );
  if (!stopped) {
    child.kill('SIGKILL');
    await within(exited, `pid ${child.pid} to exit after SIGKILL`, 5000).catch(() => {});
  }
}
