import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summarize, type BenchRun, type WorkloadSummary } from '../src/bench/stats.js';
import { escapeXml, renderRatioChartSvg } from '../src/bench/svg.js';

const on = (value: number): BenchRun => ({ mode: 'on', value });
const off = (value: number): BenchRun => ({ mode: 'off', value });

function sampleSummaries(): WorkloadSummary[] {
  return [
    summarize({
      workload: 'iperf3 1x64B',
      metric: 'throughput',
      unit: 'bit/s',
      direction: 'higher-is-better',
      runs: [on(3e8), off(1.5e8), on(2.8e8), off(1.4e8), on(3.3e8), off(1.5e8)],
      reference: { label: 'AF_UNIX', values: [4.5e8] },
    }),
    summarize({
      workload: 'sockperf 64B',
      metric: 'p99',
      unit: 'us',
      direction: 'lower-is-better',
      runs: [on(12), off(10), on(13), off(10)],
    }),
    summarize({
      workload: 'crr <loopback> & co',
      metric: 'connection rate',
      unit: 'conn/s',
      direction: 'higher-is-better',
      runs: [on(25100), off(25000)],
    }),
  ];
}

/** Checks that every opening tag is closed in order; returns the element names seen. */
function assertBalancedTags(svg: string): string[] {
  const stack: string[] = [];
  const seen: string[] = [];
  for (const match of svg.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(\/?)>/g)) {
    const [, closing, name, , selfClosing] = match;
    assert.ok(name !== undefined);
    if (closing === '/') {
      assert.equal(stack.pop(), name, `unexpected </${name}>`);
    } else {
      seen.push(name);
      if (selfClosing !== '/') stack.push(name);
    }
  }
  assert.deepEqual(stack, [], `unclosed tags: ${stack.join(', ')}`);
  // No stray '<' outside tags (text must be escaped).
  assert.equal(svg.replace(/<(\/?)[A-Za-z][^>]*>/g, '').includes('<'), false);
  return seen;
}

test('well-formed: balanced tags, single <svg> root, escaped text', () => {
  const svg = renderRatioChartSvg(sampleSummaries(), { title: 'Loopback <bench> & friends' });
  const elements = assertBalancedTags(svg);
  assert.equal(elements[0], 'svg');
  assert.equal(elements.filter((name) => name === 'svg').length, 1);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  assert.ok(svg.includes('xmlns="http://www.w3.org/2000/svg"'));
  assert.ok(svg.includes('Loopback &lt;bench&gt; &amp; friends'));
  assert.ok(svg.includes('crr &lt;loopback&gt; &amp; co'));
  assert.ok(!svg.includes('NaN'));
});

test('one bar per summarized workload, coloured by verdict', () => {
  const svg = renderRatioChartSvg(sampleSummaries());
  const bars = [...svg.matchAll(/<rect class="bar (\w+)"[^>]*fill="(#[0-9a-f]{6})"/g)];
  assert.equal(bars.length, 3);
  assert.deepEqual(
    bars.map(([, verdict, fill]) => [verdict, fill]),
    [
      ['win', '#2e7d32'],
      ['lose', '#c62828'],
      ['even', '#9e9e9e'],
    ],
  );
});

test('the 1.0 line is drawn where the bars start', () => {
  const svg = renderRatioChartSvg(sampleSummaries());
  const unity = /<line class="unity" x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)"/.exec(svg);
  assert.ok(unity, 'no 1.0 line');
  assert.equal(unity[1], unity[2], 'the 1.0 line is vertical');
  // The win bar (ratio 2.0) starts at 1.0; the lose bar (ratio 1.2 for lower-is-better) too.
  const barStarts = [...svg.matchAll(/<rect class="bar \w+" x="([\d.]+)"/g)].map(([, x]) => x);
  assert.equal(barStarts[0], unity[1]);
  assert.equal(barStarts[1], unity[1]);
});

test('axis: ratio scale, 1.0 at the expected position for width 900', () => {
  const svg = renderRatioChartSvg(sampleSummaries(), { width: 900 });
  assert.ok(svg.includes('width="900"'));
  // Plot spans x=300..840; the largest value is the AF_UNIX tick at 3.0 -> axis max ceil(3.15 / 0.5) * 0.5 = 3.5.
  // 1.0 sits at 300 + (1 / 3.5) * 540 = 454.3.
  assert.ok(svg.includes('<line class="unity" x1="454.3"'));
  assert.ok(svg.includes('on / off ratio (median of per-pair ratios)'));
  assert.ok(svg.includes('workload - metric'));
});

test('AF_UNIX reference tick only where a reference was measured, at AF_UNIX / off', () => {
  const svg = renderRatioChartSvg(sampleSummaries());
  const ticks = [...svg.matchAll(/<line class="reference" x1="([\d.]+)"/g)];
  assert.equal(ticks.length, 1);
  // AF_UNIX 4.5e8 / off median 1.5e8 = 3.0 -> 300 + (3 / 3.5) * 540 = 762.9.
  assert.equal(ticks[0]?.[1], '762.9');
  assert.ok(svg.includes('AF_UNIX / off: 3.00x'));
});

test('a workload without valid pairs gets a note instead of a bar', () => {
  const noData = summarize({
    workload: 'iperf3 -P4',
    metric: 'throughput',
    unit: 'bit/s',
    direction: 'higher-is-better',
    runs: [{ mode: 'on', discardReason: 'counters did not move' }, off(1e9)],
  });
  const svg = renderRatioChartSvg([...sampleSummaries(), noData]);
  assertBalancedTags(svg);
  assert.equal([...svg.matchAll(/<rect class="bar /g)].length, 3);
  assert.equal([...svg.matchAll(/class="row-label"/g)].length, 4);
  assert.ok(svg.includes('>no valid pairs</text>'));
});

test('escapeXml', () => {
  assert.equal(escapeXml(`a<b>&"c'`), 'a&lt;b&gt;&amp;&quot;c&apos;');
});
