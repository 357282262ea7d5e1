// The Jepsen-style summary of a chaos run (text) and its picture: an SVG timeline of every
// operation's latency (x: when it was invoked, y: how long it took, log scale; colour: the op,
// shape: the outcome) with each nemesis window shaded and labelled, as Jepsen's latency-raw plots.
import type { Analysis } from './check.ts';
import { opTypes, outcomes } from './check.ts';
import type { NemesisEvent } from './nemesis.ts';
import type { OpRecord, OpType, Outcome } from './workload.ts';

export interface RunInfo {
  readonly seed: number;
  readonly monitors: number;
  readonly clients: number;
  readonly keys: number;
  readonly seconds: number;
  readonly nemeses: readonly string[];
  readonly skipped: readonly string[];
  /** The election strategy of the monmap. */
  readonly strategy: string;
  /** What code the monitors ran (chaos/bundle.ts sourceOf). */
  readonly source: string;
}

const s = (ms: number | undefined): string => (ms === undefined ? '—' : `${(ms / 1000).toFixed(1)} s`);
const pct = (part: number, whole: number): string =>
  whole === 0 ? '—' : `${((100 * part) / whole).toFixed(1)}%`;

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

export function summaryText(info: RunInfo, analysis: Analysis, events: readonly NemesisEvent[]): string {
  const lines: string[] = [];
  lines.push(
    `chaos: seed ${info.seed}, ${info.monitors} monitors, ${info.clients} clients on ${info.keys} keys, ${info.seconds} s of faults (${info.nemeses.join(',')})`,
  );
  lines.push(`  election strategy ${info.strategy}; monitors ran ${info.source}`);
  if (info.skipped.length) lines.push(`  not run here: ${info.skipped.join('; ')}`);
  lines.push('');
  lines.push(`operations: ${analysis.total}`);
  lines.push(`  ${'op'.padEnd(5)}${outcomes.map((o) => o.padStart(9)).join('')}`);
  for (const type of opTypes)
    lines.push(
      `  ${type.padEnd(5)}${outcomes.map((o) => String(analysis.counts[type][o]).padStart(9)).join('')}`,
    );
  lines.push('');
  lines.push('availability (ops invoked in the phase that succeeded: all ops, writes):');
  const phaseLine = (label: string, p: Analysis['healthy'], span: string) =>
    `  ${label.padEnd(24)} ${span.padEnd(18)} ${String(p.ops).padStart(6)} ops ${pct(p.ok, p.ops).padStart(7)}   writes ${pct(p.writesOk, p.writes).padStart(7)}`;
  lines.push(phaseLine('healthy', analysis.healthy, ''));
  for (const [i, phase] of analysis.phases.entries()) {
    const event = events[i];
    lines.push(phaseLine(phase.label, phase, `${s(phase.startMs)}–${s(phase.endMs)}`));
    if (event?.description) lines.push(`      ${event.description}`);
  }
  const gap = analysis.longestNoWrite;
  lines.push('');
  lines.push(
    `longest window with no successful write: ${s(gap.toMs - gap.fromMs)} (${s(gap.fromMs)}–${s(gap.toMs)}${gap.during.length ? `, during ${gap.during.join(', ')}` : ''})`,
  );
  lines.push('');
  lines.push('recovery after each heal (quorum of all monitors; first successful write):');
  const byKind = new Map<string, { quorum: number[]; write: number[]; missing: number }>();
  for (const r of analysis.recoveries) {
    const entry = byKind.get(r.kind) ?? { quorum: [], write: [], missing: 0 };
    if (r.quorumAllAfterMs === undefined) entry.missing++;
    else entry.quorum.push(r.quorumAllAfterMs);
    if (r.writeOkAfterMs !== undefined) entry.write.push(r.writeOkAfterMs);
    byKind.set(r.kind, entry);
  }
  for (const [kind, entry] of byKind)
    lines.push(
      `  ${kind.padEnd(10)} ×${String(entry.quorum.length + entry.missing).padEnd(3)} quorum of all: median ${s(median(entry.quorum))}, max ${s(entry.quorum.length ? Math.max(...entry.quorum) : undefined)}${entry.missing ? `, NOT REACHED ${entry.missing}×` : ''}; first write: median ${s(median(entry.write))}, max ${s(entry.write.length ? Math.max(...entry.write) : undefined)}`,
    );
  lines.push('');
  lines.push(
    `final reads: ${analysis.finalReads.ok}/${analysis.finalReads.keys} keys read after every fault healed; acknowledged writes lost: ${analysis.lostWrites.length}`,
  );
  for (const lost of analysis.lostWrites.slice(0, 5))
    lines.push(`  LOST on ${lost.key}: ${lost.write}\n    final: ${lost.finalRead}`);
  lines.push(
    `writes the client was told failed, yet read: ${analysis.failedButRead.length}${analysis.failedButRead.length ? ' (the client library called them final failures: they happened)' : ''}`,
  );
  for (const seen of analysis.failedButRead.slice(0, 5))
    lines.push(`  FAILED ${seen.write}\n    read: ${seen.read}`);
  lines.push(
    `linearizable: ${analysis.linearizable === 'ok' ? 'yes' : analysis.linearizable === 'illegal' ? 'NO' : 'unknown (checker bound reached)'} (${analysis.checkSteps} checker steps, ${(analysis.checkMs / 1000).toFixed(1)} s)`,
  );
  if (analysis.anomaly) {
    lines.push(`  first anomaly, on ${analysis.anomaly.key}: the last ops the checker could order —`);
    for (const line of analysis.anomaly.linearized) lines.push(`    ${line}`);
    lines.push('  — and the earliest it could not place after them:');
    for (const line of analysis.anomaly.stuck) lines.push(`    ${line}`);
  }
  return lines.join('\n');
}

// --- The picture ---------------------------------------------------------------------------------

const typeColour: Record<OpType, string> = { get: '#1f77b4', set: '#2ca02c', rm: '#9467bd' };
const outcomeName: Record<Outcome, string> = { ok: 'ok', failed: 'failed', unknown: 'unknown (timed out)' };
const nemesisColour: Record<string, string> = {
  kill: '#d62728',
  pause: '#ff7f0e',
  partition: '#8c564b',
  link: '#e377c2',
  oneway: '#bcbd22',
  flap: '#17becf',
  disk: '#7f7f7f',
  clock: '#9467bd',
  netem: '#393b79',
};

const escapeXml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** One op's mark: its class names its colour (the op) and shape (the outcome); whole pixels keep it small. */
function marker(outcome: Outcome, x: number, y: number, type: OpType | 'key'): string {
  const X = Math.round(x);
  const Y = Math.round(y);
  if (outcome === 'ok') return `<circle class="${type}" cx="${X}" cy="${Y}" r="1.8"/>`;
  if (outcome === 'failed') return `<path class="x ${type}" d="M${X - 3},${Y - 3}l6,6m-6,0l6,-6"/>`;
  return `<path class="u ${type}" d="M${X},${Y - 4}l3.5,7h-7z"/>`;
}

const style = `<style>
circle{fill-opacity:.55} path.x,path.u{fill:none;stroke-width:1.3}
${opTypes.map((type) => `.${type}{fill:${typeColour[type]}} path.${type}{stroke:${typeColour[type]}}`).join(' ')} .key{fill:#333} path.key{stroke:#333}
</style>`;

/** A self-contained SVG: latency of every op over time, nemesis windows shaded and labelled. */
export function timelineSvg(
  info: RunInfo,
  history: readonly OpRecord[],
  events: readonly NemesisEvent[],
  verdict: string,
): string {
  const width = 1400;
  const height = 640;
  const left = 70;
  const right = 20;
  const top = 90;
  const bottom = 60;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const endMs = Math.max(
    1000,
    ...history.map((op) => op.completeMs),
    ...events.map((e) => e.quorumAllMs ?? e.healMs ?? 0),
  );
  const latencies = history.map((op) => Math.max(1, op.completeMs - op.invokeMs));
  const maxLatency = Math.max(10_000, ...latencies);
  const minLog = 0; // 1 ms
  const maxLog = Math.log10(maxLatency);
  const x = (ms: number) => left + (ms / endMs) * plotW;
  const y = (latencyMs: number) =>
    top + plotH - ((Math.log10(Math.max(1, latencyMs)) - minLog) / (maxLog - minLog)) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
  );
  parts.push(
    `<title>${escapeXml(`paxmon chaos run, seed ${info.seed}: operation latencies with nemesis windows`)}</title>`,
    style,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  );
  parts.push(
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${escapeXml(`paxmon chaos — seed ${info.seed}, ${info.monitors} monitors, ${info.clients} clients, ${history.length} ops — ${verdict}`)}</text>`,
  );
  // Nemesis windows: fault (start → heal) shaded, recovery (heal → quorum of all) lighter.
  const rows = 3;
  for (const [i, event] of events.entries()) {
    const colour = nemesisColour[event.kind] ?? '#999999';
    const heal = event.healMs ?? endMs;
    const x0 = x(event.startMs);
    const x1 = x(heal);
    parts.push(
      `<rect x="${x0.toFixed(1)}" y="${top}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${plotH}" fill="${colour}" fill-opacity="0.16"><title>${escapeXml(`#${event.index} ${event.kind}/${event.variant}: ${event.description}`)}</title></rect>`,
    );
    if (event.quorumAllMs !== undefined)
      parts.push(
        `<rect x="${x1.toFixed(1)}" y="${top}" width="${Math.max(0.5, x(event.quorumAllMs) - x1).toFixed(1)}" height="${plotH}" fill="${colour}" fill-opacity="0.06"/>`,
      );
    const labelY = top - 8 - (i % rows) * 14;
    const targets = event.targets.length ? ` ${event.targets.join(',')}` : '';
    parts.push(
      `<line x1="${x0.toFixed(1)}" y1="${labelY + 3}" x2="${x0.toFixed(1)}" y2="${top}" stroke="${colour}" stroke-width="0.8"/>`,
      `<text x="${(x0 + 2).toFixed(1)}" y="${labelY}" fill="${colour}">${escapeXml(`${event.kind}/${event.variant}${targets}`)}</text>`,
    );
  }
  // Axes and grid.
  parts.push(
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444" stroke-width="0.8"/>`,
  );
  for (let decade = 0; decade <= Math.ceil(maxLog); decade++) {
    const ms = 10 ** decade;
    if (ms > maxLatency) break;
    const yy = y(ms);
    const label = ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
    parts.push(
      `<line x1="${left}" y1="${yy.toFixed(1)}" x2="${left + plotW}" y2="${yy.toFixed(1)}" stroke="#ddd" stroke-width="0.6"/>`,
      `<text x="${left - 6}" y="${(yy + 4).toFixed(1)}" text-anchor="end">${label}</text>`,
    );
  }
  const stepS = endMs > 600_000 ? 60 : endMs > 120_000 ? 30 : endMs > 30_000 ? 10 : 5;
  for (let t = 0; t * 1000 <= endMs; t += stepS) {
    const xx = x(t * 1000);
    parts.push(
      `<line x1="${xx.toFixed(1)}" y1="${top + plotH}" x2="${xx.toFixed(1)}" y2="${top + plotH + 5}" stroke="#444"/>`,
      `<text x="${xx.toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle">${t} s</text>`,
    );
  }
  parts.push(
    `<text x="${left + plotW / 2}" y="${height - 22}" text-anchor="middle">time the operation was invoked</text>`,
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">latency (log scale)</text>`,
  );
  // The operations: unknown and failed drawn last, so they stay visible over the ok cloud.
  const order: Outcome[] = ['ok', 'failed', 'unknown'];
  for (const outcome of order)
    for (const op of history)
      if (op.outcome === outcome)
        parts.push(marker(outcome, x(op.invokeMs), y(op.completeMs - op.invokeMs), op.type));
  // Legend.
  let lx = left;
  const ly = height - 8;
  for (const type of opTypes) {
    parts.push(marker('ok', lx + 4, ly - 4, type), `<text x="${lx + 12}" y="${ly}">${type}</text>`);
    lx += 50;
  }
  lx += 20;
  for (const outcome of outcomes) {
    parts.push(
      marker(outcome, lx + 4, ly - 4, 'key'),
      `<text x="${lx + 12}" y="${ly}">${outcomeName[outcome]}</text>`,
    );
    lx += 130;
  }
  lx += 20;
  for (const [kind, colour] of Object.entries(nemesisColour)) {
    if (!events.some((e) => e.kind === kind)) continue;
    parts.push(
      `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${colour}" fill-opacity="0.35"/>`,
      `<text x="${lx + 16}" y="${ly}">${kind}</text>`,
    );
    lx += 80;
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
