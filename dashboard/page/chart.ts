// A statechart drawn from its machine's definition (cli/statecharts.ts statechartGraph): elkjs
// lays the states out — compound and parallel states as boxes holding their children, regions of
// a parallel state side by side with dashed borders — and this module draws the result as SVG,
// one <g data-path> per state and one <path data-…> per transition, so the page can highlight
// the active states and flash a transition as it is taken without drawing anything again.

import elkModule from 'elkjs/lib/elk.bundled.js';
import type { ELKConstructorArguments, ELK as ElkInstance } from 'elkjs/lib/elk-api.js';
import type { GraphState, GraphTransition, StatechartGraph } from '../../cli/statecharts.ts';

// elk.bundled.js is CommonJS (module.exports = ELK): esbuild hands it over as the default import,
// TypeScript's nodenext resolution as its `default` property; either way, the constructor.
type ElkConstructor = new (args?: ELKConstructorArguments) => ElkInstance;
const ELK =
  (elkModule as unknown as { default?: ElkConstructor }).default ?? (elkModule as unknown as ElkConstructor);

const svgNs = 'http://www.w3.org/2000/svg';

/** A laid-out chart: an SVG to clone for each actor that runs the machine. */
export interface ChartTemplate {
  graph: StatechartGraph;
  svg: SVGSVGElement;
}

interface ElkNode {
  id: string;
  width?: number;
  height?: number;
  x?: number;
  y?: number;
  children?: ElkNode[];
  edges?: ElkEdge[];
  labels?: { text: string; width: number; height: number; x?: number; y?: number }[];
  layoutOptions?: Record<string, string>;
}
interface ElkEdge {
  id: string;
  sources: string[];
  targets: string[];
  sections?: { startPoint: Pt; endPoint: Pt; bendPoints?: Pt[] }[];
}
interface Pt {
  x: number;
  y: number;
}

const charWidth = 6.4;
const stateHeight = 20;
const anyNode = (path: string) => `${path}#any`;
const nodeId = (path: string) => `s:${path}`;

/** Lay out a machine's graph with elkjs and draw it (once per machine; clone it per actor). */
export async function layoutChart(graph: StatechartGraph): Promise<ChartTemplate> {
  const elk = new ELK();
  const children = new Map<string, GraphState[]>();
  for (const state of graph.states)
    if (state.parent !== undefined)
      children.set(state.parent, [...(children.get(state.parent) ?? []), state]);
  const anySources = new Set(graph.transitions.filter((t) => t.source.endsWith('#any')).map((t) => t.source));
  const byPath = new Map(graph.states.map((s) => [s.path, s]));

  // Each compound state is laid out on its own (ELK's default, SEPARATE_CHILDREN), so each can
  // have its own direction: regions of a parallel state stacked, the states of a compound one in
  // layers downwards, compound siblings (leader, peon) side by side. A transition is laid out in
  // the innermost state that holds both ends, between the children of it that hold them (an
  // edge from inQuorum.leader to electing is drawn from the inQuorum box); its title names the
  // real states.
  const parentOf = (id: string): string | undefined => {
    if (id.endsWith('#any')) return id.slice(0, -4);
    return byPath.get(id)?.parent;
  };
  const chain = (id: string): string[] => {
    const list: string[] = [];
    for (let p = parentOf(id); p !== undefined; p = parentOf(p)) list.push(p);
    return list;
  };
  // For each edge: the state to lay it out in, and the children of it that stand for its ends.
  const placed = new Map<string, ElkEdge[]>();
  graph.transitions.forEach((t, i) => {
    const up = chain(t.target);
    const scope = chain(t.source).find((a) => up.includes(a)) ?? '';
    const standIn = (id: string) => {
      let n = id;
      while (parentOf(n) !== scope && parentOf(n) !== undefined) n = parentOf(n) as string;
      return n;
    };
    const from = standIn(t.source);
    const to = standIn(t.target);
    if (from === to && t.source !== t.target) return; // inside one child: drawn by nobody (rare)
    const idOf = (n: string) => (n.endsWith('#any') ? n : nodeId(n));
    placed.set(scope, [
      ...(placed.get(scope) ?? []),
      { id: `e${i}`, sources: [idOf(from)], targets: [idOf(to)] },
    ]);
  });
  const build = (state: GraphState): ElkNode => {
    const kids = children.get(state.path) ?? [];
    const id = nodeId(state.path);
    if (kids.length === 0)
      return { id, width: Math.max(36, state.key.length * charWidth + 14), height: stateHeight };
    const nodes = kids.map(build);
    if (anySources.has(anyNode(state.path))) nodes.push({ id: anyNode(state.path), width: 10, height: 10 });
    const allCompound = kids.every((k) => (children.get(k.path) ?? []).length > 0);
    const options: Record<string, string> =
      state.type === 'parallel'
        ? { 'elk.algorithm': 'box', 'elk.aspectRatio': '0.05', 'elk.spacing.nodeNode': '6' }
        : {
            'elk.algorithm': 'layered',
            'elk.direction': allCompound ? 'RIGHT' : 'DOWN',
            'elk.edgeRouting': 'POLYLINE',
            'elk.layered.spacing.nodeNodeBetweenLayers': '16',
            'elk.spacing.nodeNode': '10',
          };
    return {
      id,
      children: nodes,
      edges: placed.get(state.path) ?? [],
      layoutOptions: {
        ...options,
        'elk.padding':
          state.path === '' ? '[top=6,left=6,bottom=6,right=6]' : '[top=18,left=6,bottom=6,right=6]',
      },
    };
  };
  const root = byPath.get('') as GraphState;
  const top = build(root);
  const laid = (await elk.layout({
    ...top,
    layoutOptions: {
      ...top.layoutOptions,
      'elk.json.shapeCoords': 'ROOT',
      'elk.json.edgeCoords': 'ROOT',
    },
  } as never)) as unknown as ElkNode;
  const allEdges: ElkEdge[] = [];
  const collectEdges = (node: ElkNode) => {
    allEdges.push(...(node.edges ?? []));
    for (const child of node.children ?? []) collectEdges(child);
  };
  collectEdges(laid);

  const svg = document.createElementNS(svgNs, 'svg');
  svg.setAttribute('viewBox', `0 0 ${laid.width ?? 100} ${laid.height ?? 100}`);
  svg.setAttribute('class', 'chart-svg');
  svg.dataset.machine = graph.id;
  svg.style.setProperty('--natural-width', `${laid.width ?? 100}px`);
  const defs = document.createElementNS(svgNs, 'defs');
  const marker = document.createElementNS(svgNs, 'marker');
  marker.setAttribute('id', 'arrow');
  marker.setAttribute('viewBox', '0 0 6 6');
  marker.setAttribute('refX', '6');
  marker.setAttribute('refY', '3');
  marker.setAttribute('markerWidth', '5');
  marker.setAttribute('markerHeight', '5');
  marker.setAttribute('orient', 'auto-start-reverse');
  const tip = document.createElementNS(svgNs, 'path');
  tip.setAttribute('d', 'M0,0 L6,3 L0,6 z');
  marker.append(tip);
  defs.append(marker);
  svg.append(defs);

  const states = document.createElementNS(svgNs, 'g');
  const draw = (node: ElkNode, depth: number) => {
    for (const child of node.children ?? []) {
      const x = child.x ?? 0;
      const y = child.y ?? 0;
      const w = child.width ?? 0;
      const h = child.height ?? 0;
      const g = document.createElementNS(svgNs, 'g');
      if (child.id.endsWith('#any')) {
        g.setAttribute('class', 'any');
        const dot = document.createElementNS(svgNs, 'circle');
        dot.setAttribute('cx', String(x + w / 2));
        dot.setAttribute('cy', String(y + h / 2));
        dot.setAttribute('r', '4');
        const title = document.createElementNS(svgNs, 'title');
        title.textContent = '(any): taken in any of these states';
        dot.append(title);
        g.append(dot);
        states.append(g);
        continue;
      }
      const path = child.id.slice(2);
      const state = byPath.get(path) as GraphState;
      const parent = state.parent !== undefined ? byPath.get(state.parent) : undefined;
      const kinds = ['state', state.type];
      if (parent?.type === 'parallel') kinds.push('region');
      if (parent?.initial === path) kinds.push('initial');
      g.setAttribute('class', kinds.join(' '));
      g.dataset.path = path;
      const rect = document.createElementNS(svgNs, 'rect');
      rect.setAttribute('x', String(x));
      rect.setAttribute('y', String(y));
      rect.setAttribute('width', String(w));
      rect.setAttribute('height', String(h));
      rect.setAttribute('rx', child.children ? '6' : '9');
      const label = document.createElementNS(svgNs, 'text');
      label.textContent = state.key;
      if (child.children) {
        label.setAttribute('x', String(x + 6));
        label.setAttribute('y', String(y + 12));
      } else {
        label.setAttribute('x', String(x + w / 2));
        label.setAttribute('y', String(y + h / 2 + 4));
        label.setAttribute('text-anchor', 'middle');
      }
      const title = document.createElementNS(svgNs, 'title');
      title.textContent = path;
      g.append(rect, label, title);
      g.style.setProperty('--depth', String(depth));
      states.append(g);
      if (child.children) draw(child, depth + 1);
    }
  };
  draw(laid, 0);

  const transitions = document.createElementNS(svgNs, 'g');
  allEdges.forEach((edge) => {
    const t = graph.transitions[Number(edge.id.slice(1))] as GraphTransition;
    for (const section of edge.sections ?? []) {
      const points = [section.startPoint, ...(section.bendPoints ?? []), section.endPoint];
      const p = document.createElementNS(svgNs, 'path');
      p.setAttribute('d', points.map((pt, i) => `${i === 0 ? 'M' : 'L'}${pt.x},${pt.y}`).join(' '));
      p.setAttribute('class', 'transition');
      p.setAttribute('marker-end', 'url(#arrow)');
      p.dataset.source = t.source;
      p.dataset.target = t.target;
      p.dataset.event = t.eventType;
      const title = document.createElementNS(svgNs, 'title');
      title.textContent = `${t.source.replace(/#any$/, ' (any)') || '(root)'} → ${t.target}: ${t.label}`;
      p.append(title);
      transitions.append(p);
    }
  });
  svg.append(states, transitions);
  return { graph, svg };
}

/** A chart of one actor: the template's SVG, cloned, with its active states and flashes. */
export class ChartView {
  readonly element: SVGSVGElement;
  readonly #states = new Map<string, SVGGElement>();
  readonly #transitions: SVGPathElement[] = [];
  readonly #edges: ChartEdge[] = [];
  #active = new Set<string>();

  constructor(template: ChartTemplate) {
    this.element = template.svg.cloneNode(true) as SVGSVGElement;
    for (const g of this.element.querySelectorAll<SVGGElement>('g.state'))
      this.#states.set(g.dataset.path ?? '', g);
    this.#transitions.push(...this.element.querySelectorAll<SVGPathElement>('path.transition'));
    for (const p of this.#transitions) {
      this.#edges.push({
        source: (p.dataset.source ?? '').replace(/#any$/, ''),
        target: p.dataset.target ?? '',
        event: p.dataset.event ?? '',
      });
    }
  }

  /** Mark these state paths active (and no others). */
  setActive(active: Set<string>): void {
    for (const path of this.#active)
      if (!active.has(path)) this.#states.get(path)?.classList.remove('active');
    for (const path of active) if (!this.#active.has(path)) this.#states.get(path)?.classList.add('active');
    this.#active = new Set(active);
  }

  /**
   * Flash the transitions that explain a change from `before` to `after` active paths, and return
   * them. A snapshot's record names the event the actor was sent, not the one a transition was
   * taken on: most of the protocol's transitions are on events a machine raises or a child sends
   * while it handles a message (a peer's reset raises monitor.leader_lost; a probe reply raises
   * monitor.start_election), so the transitions are found from the state change itself
   * (explainChange) and the event only breaks ties.
   */
  flash(before: Set<string>, after: Set<string>, event: string): number {
    const taken = explainChange(this.#edges, before, after, event);
    for (const i of taken) {
      const p = this.#transitions[i] as SVGPathElement;
      // The Web Animations API restarts a flash without a style recalculation per arrow (a class
      // removed and added again needs a forced reflow between, for every arrow of every change of
      // a frame). The class stays: this transition has been taken.
      p.animate(flashKeyframes(), { duration: 1200, easing: 'ease-out' });
      p.classList.add('flash');
    }
    return taken.size;
  }
}

/** A taken transition's flash: the page's --flash colour and thick, fading back to the chart's grey. */
let keyframes: Keyframe[] | undefined;
function flashKeyframes(): Keyframe[] {
  if (!keyframes) {
    const colour = getComputedStyle(document.documentElement).getPropertyValue('--flash').trim() || '#e8590c';
    keyframes = [
      { stroke: colour, strokeWidth: '3.5' },
      { stroke: '#b9c0cc', strokeWidth: '0.9' },
    ];
  }
  return keyframes;
}

/** A drawn transition as explainChange reads it: its source (`#any` stripped), target and event. */
export interface ChartEdge {
  /** The state it leaves; for an `(any)` transition, the compound state whose `on` it is. */
  source: string;
  target: string;
  event: string;
}

const depthOf = (path: string) => (path === '' ? 0 : path.split('.').length);
const within = (path: string, ancestor: string) =>
  ancestor === '' || path === ancestor || path.startsWith(`${ancestor}.`);

/**
 * The transitions (indices into `edges`) that explain a state change from the active paths
 * `before` to `after`. For each state entered at the top of what was entered (its parent was
 * active already, or is entered by the same transition), the transitions from an active state
 * into it — or into a state inside it, or re-entering one of its active ancestors — are the
 * candidates; the ones on the recorded event win, then those on an event that may have been
 * raised, then the ones from the innermost source (the transition of `inQuorum.peon` rather than
 * the `(any)` one of the root), then the innermost target. A change that went through a state that did not stay active (writing → refresh →
 * active in one step) is explained by the chain of two transitions. A change that none of these
 * explains flashes every transition into its entered state, so every recorded change flashes.
 */
export function explainChange(
  edges: readonly ChartEdge[],
  before: Set<string>,
  after: Set<string>,
  event: string,
): Set<number> {
  const entered = [...after].filter((p) => !before.has(p));
  const parentOf = (p: string) => (p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '');
  const tops = entered.filter((p) => p !== '' && !entered.includes(parentOf(p)));
  const taken = new Set<number>();
  const explains = (target: string, top: string) =>
    after.has(target) && (within(target, top) || within(top, target));
  // The ones on the recorded event; then the ones that may have been taken on an event raised
  // while it was handled (not on another message or timer: those come only from outside, as the
  // recorded one did); then from the innermost source; then into the innermost target.
  const rank = (i: number) => {
    const e = edges[i] as ChartEdge;
    const outside = e.event.startsWith('mon.') || e.event.startsWith('xstate.after.');
    return [e.event === event ? 1 : 0, outside ? 0 : 1, depthOf(e.source), depthOf(e.target)];
  };
  const compare = (x: number[], y: number[]) => x.findIndex((v, k) => v !== y[k]);
  const best = (candidates: number[]) => {
    let kept: number[] = [];
    let top: number[] = [-1, -1, -1, -1];
    for (const i of candidates) {
      const r = rank(i);
      const k = compare(r, top);
      if (k === -1) kept.push(i);
      else if ((r[k] as number) > (top[k] as number)) {
        top = r;
        kept = [i];
      }
    }
    return kept;
  };
  for (const top of tops) {
    // Chains of one, two or three transitions: from an active state, through states left in the
    // same step (writing → refresh → active → updating when a queued proposal starts at once),
    // into the entered state; the shortest found.
    let chains: number[][] = edges.flatMap((e, i) => (before.has(e.source) ? [[i]] : []));
    let found: number[][] = [];
    for (let hops = 1; hops <= 3 && found.length === 0 && chains.length > 0; hops += 1) {
      if (hops > 1)
        chains = chains.flatMap((chain) => {
          const via = (edges[chain[chain.length - 1] as number] as ChartEdge).target;
          if (after.has(via)) return [];
          return edges.flatMap((e, i) =>
            e.source !== '' && within(via, e.source) && !chain.includes(i) ? [[...chain, i]] : [],
          );
        });
      // Re-entering an active ancestor of the entered state explains it only as one transition
      // (a chain that left that ancestor would enter its initial states, not necessarily these).
      found = chains.filter((chain) => {
        const target = (edges[chain[chain.length - 1] as number] as ChartEdge).target;
        return hops === 1 ? explains(target, top) : after.has(target) && within(target, top);
      });
    }
    if (found.length > 0) {
      const ends = best(found.map((chain) => chain[chain.length - 1] as number));
      for (const chain of found)
        if (ends.includes(chain[chain.length - 1] as number)) for (const i of chain) taken.add(i);
      continue;
    }
    edges.forEach((e, i) => {
      if (within(e.target, top)) taken.add(i);
    });
  }
  return taken;
}
