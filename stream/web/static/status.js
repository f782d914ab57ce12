// The status page: consumers, dead letters by reason, the champion and its promotions; throughput and
// latency plotted from each poll since the page opened.
"use strict";
const series = {t: [], rate: [], p95: []};

function draw(data) {
  const champion = document.getElementById("champion");
  champion.className = "";
  champion.textContent = `champion model: ${data.champion || "- (none promoted; scorers serve their checkpoint)"}`;
  const tbody = document.querySelector("#consumers tbody");
  tbody.replaceChildren();
  const dead = {};
  let rate = 0, p95 = null;
  for (const c of data.consumers) {
    addRow(tbody, [{text: c.id, cls: "id"}, c.live ? "yes" : "no", fmt(+c.alertsPerS, 1), fmt(+c.latencyP50Ms, 0),
                   fmt(+c.latencyP95Ms, 0), fmt(+c.latencyP99Ms, 0), c.lag ?? "-", c.alerts ?? "-",
                   c.deadLetters ?? "-", c.aborts ?? "-", c.redisOutages ?? "-", c.modelVersion || "-",
                   c.host || "-", fmt((data.now_ms - c.heartbeat_ms) / 1000, 0) + " s ago"]);
    for (const [reason, n] of Object.entries(c.deadLetterReasons)) dead[reason] = (dead[reason] || 0) + n;
    if (c.live) {
      rate += +c.alertsPerS || 0;
      if (c.latencyP95Ms !== undefined) p95 = Math.max(p95 ?? 0, +c.latencyP95Ms);
    }
  }
  const deadBody = document.querySelector("#dead tbody");
  deadBody.replaceChildren();
  for (const [reason, n] of Object.entries(dead).sort((a, b) => b[1] - a[1])) addRow(deadBody, [{text: reason, cls: "id"}, String(n)]);
  const promoBody = document.querySelector("#promotions tbody");
  promoBody.replaceChildren();
  for (const p of (data.promotions ? data.promotions.recent : [])) addRow(promoBody, [{text: p.version, cls: "id"}, p.at, p.reason]);
  series.t.push(utc(data.now_ms));  // "YYYY-MM-DD HH:MM:SS", a date axis to plotly
  series.rate.push(rate);
  series.p95.push(p95);
  const layout = (title) => ({...PLOT_LAYOUT, showlegend: false, xaxis: {type: "date"},
                              yaxis: {title: {text: title}, rangemode: "tozero"}});
  // Copies: Plotly.react redraws only data it has not seen (the same arrays, grown, would not be drawn).
  Plotly.react("rate", [{type: "scatter", mode: "lines+markers", x: [...series.t], y: [...series.rate]}],
               layout("alerts/s, live consumers (last minute)"), PLOT_CONFIG);
  Plotly.react("latency", [{type: "scatter", mode: "lines+markers", x: [...series.t], y: [...series.p95],
                            line: {color: "#d55e00"}, marker: {color: "#d55e00"}}],
               layout("latency p95 ms, slowest consumer"), PLOT_CONFIG);
}

async function refresh() {
  try {
    draw(await getJSON("/api/status"));
    document.body.dataset.ready = "1";
  } catch (err) {
    const champion = document.getElementById("champion");
    champion.className = "error";
    champion.textContent = err.message;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
