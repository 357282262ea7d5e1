// Summarise V8 .cpuprofile files (node --cpu-prof): self time per function, optionally only for
// the samples taken inside a time window. V8 stamps samples with the monotonic clock in µs, the
// same clock as process.hrtime(), so the bench can give the window of its load phase.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, relative } from 'node:path';

/**
 * tsx compiles each .ts file to one minified line, so a profile's line numbers say nothing. tsx
 * keeps every compiled file, with its source map, in its cache (TMPDIR/tsx-UID/*, JSON
 * `{ code, map }`): take the newest entry per source file and map the column back to the line.
 */
function tsxSourceMaps(): Map<string, SourceMap> {
  const maps = new Map<string, { mtime: number; map: SourceMap }>();
  let dir: string;
  try {
    dir = join(tmpdir(), `tsx-${userInfo().uid}`);
    for (const name of readdirSync(dir)) {
      const file = join(dir, name);
      try {
        const mtime = statSync(file).mtimeMs;
        const entry = JSON.parse(readFileSync(file, 'utf8')) as { map?: SourceMapPayload };
        const source = entry.map?.sources?.[0];
        if (!entry.map || !source) continue;
        const known = maps.get(source);
        if (!known || known.mtime < mtime) maps.set(source, { mtime, map: new SourceMap(entry.map) });
      } catch {
        // not a cache entry
      }
    }
  } catch {
    // no tsx cache
  }
  return new Map([...maps].map(([source, v]) => [source, v.map]));
}

/**
 * The main thread's profile in a --cpu-prof-dir. Node writes one file per thread,
 * CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is thread 0 (with
 * `--import tsx` the module hooks run on a second thread, which has its own profile).
 */
export function mainThreadProfile(dir: string): string | null {
  const main = readdirSync(dir).filter((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  return main.length ? join(dir, main.sort()[main.length - 1] as string) : null;
}

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
  /** Already a source position (mapped out of a bundle): no tsx map applies. */
  mapped?: boolean;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  function: string;
  /** file:line, relative to the repository (node_modules/<package>/… for dependencies). */
  location: string;
  selfMs: number;
  /** Share of all sampled time in the window, idle excluded. */
  percent: number;
}

export interface ProfileSummary {
  /** Sampled time in the window, idle excluded, ms. */
  busyMs: number;
  idleMs: number;
  windowed: boolean;
  top: FunctionTime[];
  /** Self time grouped by module (our directories, or the dependency package). */
  byModule: { module: string; selfMs: number; percent: number }[];
}

const bundleMaps = new Map<string, SourceMap | null>();

/**
 * A frame in a bundle (dist/paxmon.mjs, the monitors' build) as the source frame it came from,
 * through the bundle's linked source map; other frames unchanged.
 */
function unbundled(frame: CallFrame): CallFrame {
  if (!frame.url.endsWith('.mjs')) return frame;
  const path = frame.url.startsWith('file://') ? decodeURIComponent(frame.url.slice(7)) : frame.url;
  let map = bundleMaps.get(path);
  if (map === undefined) {
    try {
      map = new SourceMap(JSON.parse(readFileSync(`${path}.map`, 'utf8')) as SourceMapPayload);
    } catch {
      map = null;
    }
    bundleMaps.set(path, map);
  }
  if (!map) return frame;
  const entry = map.findEntry(frame.lineNumber, frame.columnNumber) as {
    originalSource?: string;
    originalLine?: number;
  };
  if (!entry.originalSource || typeof entry.originalLine !== 'number') return frame;
  const source = entry.originalSource.startsWith('file://')
    ? entry.originalSource
    : `file://${join(dirname(path), entry.originalSource)}`;
  return { ...frame, url: source, lineNumber: entry.originalLine, columnNumber: 0, mapped: true };
}

function location(frame: CallFrame, root: string, maps: Map<string, SourceMap>): string {
  if (!frame.url) return '';
  let path = frame.url.startsWith('file://') ? decodeURIComponent(frame.url.slice(7)) : frame.url;
  let line = frame.lineNumber + 1;
  const map = path.endsWith('.ts') && !frame.mapped ? maps.get(path) : undefined;
  if (map) {
    const entry = map.findEntry(frame.lineNumber, frame.columnNumber) as { originalLine?: number };
    if (typeof entry.originalLine === 'number') line = entry.originalLine + 1;
  }
  if (path.startsWith(root)) path = relative(root, path);
  return `${path}:${line}`;
}

function moduleOf(url: string, name: string, root: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  if (url.startsWith('node:')) return 'node: (core)';
  let path = url.startsWith('file://') ? decodeURIComponent(url.slice(7)) : url;
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? path);
  }
  if (path.startsWith(root)) path = relative(root, path);
  const dir = path.split('/')[0] ?? path;
  return dir.endsWith('.ts') || dir.endsWith('.js') ? path : `${dir}/`;
}

/**
 * Self time per function over one or more profiles (their samples added up), for the samples
 * whose timestamp lies in [fromUs, toUs] when given.
 */
export function summarise(
  files: string[],
  root: string,
  window?: { fromUs: number; toUs: number },
  topN = 15,
): ProfileSummary {
  const byFunction = new Map<string, { function: string; location: string; selfUs: number }>();
  const byModule = new Map<string, number>();
  let busyUs = 0;
  let idleUs = 0;
  let windowed = Boolean(window);
  const profiles = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as CpuProfile);
  const maps = tsxSourceMaps();
  if (window) {
    // Fall back to whole profiles when the window misses them (different clocks).
    const overlaps = profiles.some((p) => p.startTime <= window.toUs && p.endTime >= window.fromUs);
    if (!overlaps) windowed = false;
  }
  for (const profile of profiles) {
    const nodes = new Map<number, ProfileNode>();
    for (const node of profile.nodes) nodes.set(node.id, node);
    let t = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      const delta = profile.timeDeltas[i] ?? 0;
      t += delta;
      // A sample's time is the interval up to the next sample.
      const duration = profile.timeDeltas[i + 1] ?? 0;
      if (windowed && window && (t < window.fromUs || t > window.toUs)) continue;
      const node = nodes.get(profile.samples[i] as number);
      if (!node) continue;
      const frame = unbundled(node.callFrame);
      const name = frame.functionName || '(anonymous)';
      if (name === '(idle)') {
        idleUs += duration;
        continue;
      }
      busyUs += duration;
      const loc = location(frame, root, maps);
      const id = `${name}\u0000${loc}`;
      const entry = byFunction.get(id) ?? { function: name, location: loc, selfUs: 0 };
      entry.selfUs += duration;
      byFunction.set(id, entry);
      const mod = moduleOf(frame.url, name, root);
      byModule.set(mod, (byModule.get(mod) ?? 0) + duration);
    }
  }
  const pct = (us: number) => (busyUs ? (100 * us) / busyUs : 0);
  return {
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    windowed,
    top: [...byFunction.values()]
      .sort((a, b) => b.selfUs - a.selfUs)
      .slice(0, topN)
      .map((e) => ({
        function: e.function,
        location: e.location,
        selfMs: e.selfUs / 1000,
        percent: pct(e.selfUs),
      })),
    byModule: [...byModule.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([module, us]) => ({ module, selfMs: us / 1000, percent: pct(us) })),
  };
}

export function formatProfile(title: string, s: ProfileSummary): string {
  const lines = [
    `${title}: ${(s.busyMs / 1000).toFixed(2)} s on CPU${s.windowed ? ' during the load' : ' (whole run)'}, ${(s.idleMs / 1000).toFixed(2)} s idle`,
    `   #  self ms      %  function  (location)`,
  ];
  s.top.forEach((f, i) => {
    lines.push(
      `  ${String(i + 1).padStart(2)}  ${f.selfMs.toFixed(0).padStart(7)}  ${f.percent.toFixed(1).padStart(5)}  ${f.function}${f.location ? `  (${f.location})` : ''}`,
    );
  });
  lines.push(`  by module: ${s.byModule.map((m) => `${m.module} ${m.percent.toFixed(1)}%`).join(' · ')}`);
  return lines.join('\n');
}
