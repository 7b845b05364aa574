/**
 * A time-series chart (uPlot, canvas): one series from `/v1/stats/timeseries`. Created once
 * per mount; data updates go through setData, size follows the container.
 */
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export function Chart(props: {
  title: string;
  points: [number, number | null][] | undefined;
  format: (v: number) => string;
  color: string;
  /** Fixed y range (success rate: 0..1). */
  yRange?: [number, number];
  /** Why there is no data (the server refused the history query): shown instead of the plot. */
  error?: string;
}) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const fmt = useRef(props.format);
  fmt.current = props.format;

  useEffect(() => {
    const host = el.current!;
    const opts: uPlot.Options = {
      width: Math.max(200, host.clientWidth),
      height: 160,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true },
        y: props.yRange
          ? { range: props.yRange }
          : { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
      axes: [
        { stroke: '#8b949e', grid: { stroke: '#30363d', width: 1 }, ticks: { stroke: '#30363d' } },
        {
          stroke: '#8b949e',
          grid: { stroke: '#30363d', width: 1 },
          ticks: { stroke: '#30363d' },
          size: 60,
          values: (_u, vals) => vals.map((v) => fmt.current(v)),
        },
      ],
      series: [
        {},
        { stroke: props.color, width: 2, fill: `${props.color}22`, spanGaps: false, points: { show: false } },
      ],
    };
    const p = new uPlot(opts, [[], []], host);
    plot.current = p;
    const ro = new ResizeObserver(() => p.setSize({ width: Math.max(200, host.clientWidth), height: 160 }));
    ro.observe(host);
    return () => {
      ro.disconnect();
      p.destroy();
      plot.current = null;
    };
  }, [props.color, props.yRange]);

  useEffect(() => {
    const pts = props.points ?? [];
    plot.current?.setData([pts.map((p) => p[0] / 1000), pts.map((p) => p[1])]);
  }, [props.points]);

  const last = props.error ? undefined : props.points?.findLast((p) => p[1] !== null)?.[1];
  return (
    <div className="chart" data-testid="chart">
      <div className="chart-head">
        <span>{props.title}</span>
        <span className="chart-last">{last === undefined || last === null ? '–' : props.format(last)}</span>
      </div>
      {props.error ? (
        <div className="chart-error notice warn" role="alert" data-testid="chart-error">
          {props.error}
        </div>
      ) : null}
      {/* Kept mounted (uPlot lives in it), hidden while there is an error. */}
      <div ref={el} className="chart-plot" hidden={props.error !== undefined} />
    </div>
  );
}
