// Small SVG charts drawn here (no charting library, nothing loaded from elsewhere). Colours
// come from CSS classes (.series-0 …), so the charts follow the console's theme.
import { h, svg } from "./dom.js";

const FONT = 13;

function legend(series) {
  return h(
    "div",
    { class: "legend" },
    series.map((s, i) =>
      h("span", { class: "legend-item" }, h("span", { class: `swatch series-${i}` }), s.name),
    ),
  );
}

/**
 * Horizontal grouped bars: one group per row, one bar per series.
 * rows: [{label, values: [number|null…], markers?: [number|null…]}]; markers draw a tick
 * (e.g. the 90th percentile) on the bar of the same series.
 */
export function groupedBars({ rows, series, max, format, testid }) {
  const labelWidth = 250;
  const width = 960;
  const barHeight = 14;
  const gap = 3;
  const groupGap = 14;
  const plotWidth = width - labelWidth - 70;
  const groupHeight = series.length * (barHeight + gap) + groupGap;
  const height = rows.length * groupHeight + 24;
  const top = Math.max(max || 0, ...rows.flatMap((r) => [...r.values, ...(r.markers || [])].filter((v) => v != null)), 1e-9);
  const x = (value) => (Math.max(0, value) / top) * plotWidth;
  const chart = svg("svg", {
    class: "chart bars",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
  });
  for (let tick = 0; tick <= 4; tick++) {
    const value = (top * tick) / 4;
    const tx = labelWidth + x(value);
    chart.append(
      svg("line", { class: "gridline", x1: tx, x2: tx, y1: 0, y2: height - 18 }),
      svg("text", { class: "axis", x: tx, y: height - 4, "text-anchor": "middle", "font-size": FONT - 2 }, format(value)),
    );
  }
  rows.forEach((row, r) => {
    const y0 = r * groupHeight + 4;
    chart.append(
      svg(
        "text",
        { class: "row-label", x: labelWidth - 10, y: y0 + (series.length * (barHeight + gap)) / 2 + 4, "text-anchor": "end", "font-size": FONT },
        row.label,
      ),
    );
    series.forEach((s, i) => {
      const value = row.values[i];
      const y = y0 + i * (barHeight + gap);
      if (value === null || value === undefined) {
        chart.append(svg("text", { class: "axis", x: labelWidth + 4, y: y + barHeight - 3, "font-size": FONT - 2 }, "–"));
        return;
      }
      const bar = svg("rect", {
        class: `bar series-${i}`,
        x: labelWidth,
        y,
        width: Math.max(1, x(value)),
        height: barHeight,
        dataset: { value: String(value) },
      });
      bar.append(svg("title", {}, `${row.label} · ${s.name}: ${format(value)}`));
      chart.append(bar);
      const marker = row.markers ? row.markers[i] : null;
      if (marker !== null && marker !== undefined) {
        const mx = labelWidth + x(marker);
        chart.append(
          svg("line", { class: `marker series-${i}`, x1: mx, x2: mx, y1: y - 2, y2: y + barHeight + 2 }),
          svg("line", { class: "whisker", x1: labelWidth + x(value), x2: mx, y1: y + barHeight / 2, y2: y + barHeight / 2 }),
        );
      }
      chart.append(
        svg("text", { class: "value", x: labelWidth + Math.max(x(value), x(marker || 0)) + 6, y: y + barHeight - 3, "font-size": FONT - 2 }, format(value)),
      );
    });
  });
  return h("div", { class: "chart-box", dataset: { testid } }, legend(series), chart);
}

/** Stacked columns over time: columns [{label, values: [number…]}] in series order. */
export function stackedColumns({ columns, series, testid, width = 1860 }) {
  const height = 240;
  const left = 40;
  const bottom = 30;
  const plotHeight = height - bottom - 10;
  const plotWidth = width - left - 10;
  const top = Math.max(1, ...columns.map((c) => c.values.reduce((a, b) => a + b, 0)));
  const step = plotWidth / Math.max(1, columns.length);
  const barWidth = Math.max(2, step * 0.7);
  const y = (value) => (value / top) * plotHeight;
  const chart = svg("svg", { class: "chart columns", viewBox: `0 0 ${width} ${height}`, role: "img" });
  const ticks = Math.min(4, top);
  for (let tick = 0; tick <= ticks; tick++) {
    const value = Math.round((top * tick) / ticks);
    const ty = 10 + plotHeight - y(value);
    chart.append(
      svg("line", { class: "gridline", x1: left, x2: width - 10, y1: ty, y2: ty }),
      svg("text", { class: "axis", x: left - 6, y: ty + 4, "text-anchor": "end", "font-size": FONT - 2 }, String(value)),
    );
  }
  const every = Math.ceil(columns.length / 10);
  columns.forEach((column, c) => {
    const x = left + c * step + (step - barWidth) / 2;
    let base = 10 + plotHeight;
    column.values.forEach((value, i) => {
      if (!value) return;
      const bar = svg("rect", { class: `bar series-${i}`, x, y: base - y(value), width: barWidth, height: y(value) });
      bar.append(svg("title", {}, `${column.label} · ${series[i].name}: ${value}`));
      chart.append(bar);
      base -= y(value);
    });
    if (c % every === 0) {
      chart.append(
        svg("text", { class: "axis", x: x + barWidth / 2, y: height - 10, "text-anchor": "middle", "font-size": FONT - 2 }, column.label),
      );
    }
  });
  return h("div", { class: "chart-box", dataset: { testid } }, legend(series), chart);
}
