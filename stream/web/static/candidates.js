// The candidates page: polls /api/candidates with the form's filters and redraws the table in place.
"use strict";
const form = document.getElementById("filters");
const note = document.getElementById("note");
const tbody = document.querySelector("#candidates tbody");

function query() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) if (value !== "") params.set(name, value);
  return params;
}

async function refresh() {
  try {
    const data = await getJSON("/api/candidates?" + query());
    tbody.replaceChildren();
    data.rows.forEach((r, i) => addRow(tbody, [
      String(i + 1), {text: r.objectId, href: "/object/" + encodeURIComponent(r.objectId), cls: "id"},
      fmt(r.score, 3), fmt(r.sn, 3), fmt(r.flare, 3), r.class || "-", fmt(r.ageDays, 1),
      r.nVisits === null ? "-" : String(r.nVisits), fmt(r.raDeg, 4), fmt(r.decDeg, 4),
      fmt(r.latestMjdTai, 4), fmt((data.now_ms - r.updatedMs) / 1000, 0) + " s ago"]));
    note.className = "dim";
    note.textContent = `${data.rows.length} shown of ${data.considered} recent candidates · updated ${utc(data.now_ms)} UTC · refresh every ${REFRESH_MS / 1000} s`;
  } catch (err) {
    note.className = "error";
    note.textContent = err.message;
  }
}

form.addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
refresh();
setInterval(refresh, REFRESH_MS);
