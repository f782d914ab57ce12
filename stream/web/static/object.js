// The object page: light curve per band, class probabilities and likelihoods at each alert, follow-ups.
"use strict";
const objectId = document.getElementById("object").dataset.objectId;
const BAND_COLOURS = {"lsst-u": "#56b4e9", "lsst-g": "#009e73", "lsst-r": "#d55e00", "lsst-i": "#cc79a7",
                      "lsst-z": "#7f4f24", "lsst-y": "#444444", "ztf-g": "#009e73", "ztf-r": "#d55e00",
                      "ztf-i": "#cc79a7"};

function lightCurve(bands) {
  const traces = [];
  for (const [band, p] of Object.entries(bands)) {
    for (const detected of [true, false]) {
      const idx = p.detection.map((d, i) => (d === detected ? i : -1)).filter((i) => i >= 0);
      if (!idx.length) continue;
      traces.push({
        name: detected ? band : band + " (non-detection)", legendgroup: band, type: "scatter", mode: "markers",
        x: idx.map((i) => p.mjdTai[i]), y: idx.map((i) => p.fluxNjy[i]),
        error_y: {type: "data", array: idx.map((i) => p.fluxErrNjy[i]), visible: true, thickness: 1},
        marker: {color: BAND_COLOURS[band] || "#333", size: detected ? 8 : 9,
                 symbol: detected ? "circle" : "triangle-down-open"},
        meta: {band: band, detection: detected},
      });
    }
  }
  Plotly.newPlot("lc", traces, {...PLOT_LAYOUT, xaxis: {title: {text: "MJD (TAI)"}},
                                yaxis: {title: {text: "flux (nJy)"}, zeroline: true}}, PLOT_CONFIG);
}

function scorePlots(history) {
  const x = history.map((e) => e.mjdTai);
  const names = history.length ? Object.keys(history[0].probs) : [];
  Plotly.newPlot("probs", names.map((name) => ({
    name: name, type: "scatter", mode: "lines+markers", x: x, y: history.map((e) => e.probs[name]),
  })), {...PLOT_LAYOUT, xaxis: {title: {text: "MJD (TAI) of the alert"}},
        yaxis: {title: {text: "probability"}, range: [0, 1]}}, PLOT_CONFIG);
  Plotly.newPlot("likelihoods", [
    {name: "sn_likelihood", type: "scatter", mode: "lines+markers", x: x, y: history.map((e) => e.sn)},
    {name: "flare_likelihood", type: "scatter", mode: "lines+markers", x: x, y: history.map((e) => e.flare)},
  ], {...PLOT_LAYOUT, xaxis: {title: {text: "MJD (TAI) of the alert"}}, yaxis: {range: [0, 1]}}, PLOT_CONFIG);
}

function tables(data) {
  const s = data.scores;
  document.getElementById("summary").textContent = s.snLikelihood === undefined ? "no scores stored (expired)" :
    `ra ${fmt(+s.raDeg, 5)}° dec ${fmt(+s.decDeg, 5)}° · top class ${s.topClass} · sn_likelihood ` +
    `${fmt(+s.snLikelihood, 3)} · flare_likelihood ${fmt(+s.flareLikelihood, 3)} · ${s.nVisits} visits · ` +
    `age ${fmt(+s.ageDays, 1)} d · model ${s.modelVersion} · survey ${s.survey}`;
  const links = document.getElementById("links");
  for (const [name, url] of Object.entries(data.links)) {
    const a = document.createElement("a");
    a.href = url;
    a.textContent = name;
    a.rel = "noopener noreferrer";
    links.append(a, " ");
  }
  const followups = document.getElementById("followups");
  const fired = Object.entries(data.followups);
  if (!fired.length) followups.textContent = "none";
  for (const [rule, alertId] of fired) {
    const li = document.createElement("li");
    li.textContent = `rule ${rule} fired on alert ${alertId}`;
    followups.appendChild(li);
  }
  const tbody = document.querySelector("#history tbody");
  for (const e of [...data.history].reverse()) {
    const top = Object.entries(e.probs).reduce((a, b) => (b[1] > a[1] ? b : a));
    addRow(tbody, [String(e.alertId), fmt(e.mjdTai, 4), utc(e.scoredMs), fmt(e.sn, 3), fmt(e.flare, 3),
                   `${top[0]} (${fmt(top[1], 2)})`, e.model]);
  }
}

getJSON("/api/object/" + encodeURIComponent(objectId)).then((data) => {
  tables(data);
  lightCurve(data.bands);
  scorePlots(data.history);
  document.body.dataset.ready = "1";
}).catch((err) => {
  const summary = document.getElementById("summary");
  summary.className = "error";
  summary.textContent = err.message;
});
