#!/usr/bin/env python3
"""Draws the ratios of a bench run (results.json) that have a target as an SVG bar chart: each
bar is the measured ratio, the tick its target, green where met, red where not.
    bench/chart.py [results.json] [chart.svg]    (bench/bench.py calls it after every run)"""
import json
import re
import sys
from html import escape
from pathlib import Path


def targets(ratios: dict) -> list[tuple[str, float, str, float]]:
    out = []
    for name, v in ratios.items():
        m = re.search(r"target ([≥≤]) ([\d./]+)", name)
        if isinstance(v, (list, tuple)) and len(v) == 2 and isinstance(v[1], list):
            v = v[0]  # a ratio paired per round: (median, per round)
        if not m or not isinstance(v, (int, float)):
            continue
        t = m.group(2)
        target = float(t.split("/")[0]) / float(t.split("/")[1]) if "/" in t else float(t)
        label = re.sub(r"\s*\(.*\)$", "", name)
        out.append((label, float(v), m.group(1), target))
    return out


def svg(data: dict) -> str:
    rows = targets(data["ratios"])
    w, left, bar_h, gap = 760, 330, 18, 10
    h = 60 + len(rows) * (bar_h + gap)
    scale = max([max(v, t) for _, v, _, t in rows] + [1.0]) * 1.1
    x = lambda r: left + (w - left - 60) * r / scale
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<text x="10" y="20" font-size="14" font-weight="bold">token-exchange-filter: ratios with targets</text>',
             f'<text x="10" y="38" fill="#555">{escape(data.get("date", ""))}, {escape(data.get("machine", ""))[:70]}; bar = measured, tick = target</text>']
    for i, (label, v, op, t) in enumerate(rows):
        y = 52 + i * (bar_h + gap)
        met = v >= t if op == "≥" else v <= t
        color = "#2e8b57" if met else "#c0392b"
        parts.append(f'<text x="10" y="{y + 13}">{escape(label[:52])}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{x(v) - left:.1f}" height="{bar_h}" fill="{color}"/>')
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{y - 3}" y2="{y + bar_h + 3}" stroke="#000" stroke-width="2"/>')
        parts.append(f'<text x="{max(x(v), x(t)) + 6:.1f}" y="{y + 13}">{v:.2f} (target {op} {t:.2f})</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results.json"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else src.with_name("chart.svg")
    dst.write_text(svg(json.loads(src.read_text())))
    print(f"wrote {dst}")
