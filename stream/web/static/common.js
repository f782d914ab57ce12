// Shared helpers. Text goes into the page with textContent only, never as markup.
"use strict";
const REFRESH_MS = 1000 * parseFloat(document.body.dataset.refreshS || "5");

function fmt(value, digits) {
  return value === null || value === undefined || Number.isNaN(value) ? "-" : Number(value).toFixed(digits);
}

function addRow(tbody, cells) {
  // cells: strings, or {text, href, cls}
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    const spec = typeof c === "object" && c !== null ? c : {text: c};
    if (spec.cls) td.className = spec.cls;
    if (spec.href) {
      const a = document.createElement("a");
      a.href = spec.href;
      a.textContent = spec.text;
      td.appendChild(a);
    } else {
      td.textContent = spec.text;
    }
    tr.appendChild(td);
  }
  tbody.appendChild(tr);
  return tr;
}

async function getJSON(url) {
  const response = await fetch(url, {credentials: "same-origin"});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function utc(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

const PLOT_LAYOUT = {margin: {l: 60, r: 20, t: 10, b: 45}, hovermode: "closest", legend: {orientation: "h", y: -0.2}};
const PLOT_CONFIG = {displaylogo: false, responsive: true};
