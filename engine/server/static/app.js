// xmodal search page: plain JavaScript, no build step, talks only to this server.
"use strict";

const $ = (sel) => document.querySelector(sel);
let queryFile = null;

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function setStatus(text, isError = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function targets() {
  return [...document.querySelectorAll("input[name=target]:checked")].map((box) => box.value);
}

function setFile(file) {
  queryFile = file || null;
  $("#file-name").textContent = queryFile ? queryFile.name : "";
  $("#clear-file").hidden = !queryFile;
  if (queryFile) search();
}

async function search() {
  const text = $("#q").value.trim();
  const k = Number($("#k").value);
  const wanted = targets();
  if (!Number.isInteger(k) || k < 1 || k > 200) { render([]); setStatus("Results must be a whole number from 1 to 200.", true); return; }
  if (!text && !queryFile) { setStatus("Type a query or choose a file."); return; }
  if (!wanted.length) { setStatus("Choose at least one kind of result."); return; }
  let init;
  if (queryFile) {
    const form = new FormData();
    form.append("file", queryFile);
    if (text) form.append("text", text);
    form.append("targets", wanted.join(","));
    form.append("k", String(k));
    form.append("show_all", "true");
    init = { method: "POST", body: form };
  } else {
    init = { method: "POST", headers: { "Content-Type": "application/json" },
             body: JSON.stringify({ text, targets: wanted, k, show_all: true }) };
  }
  setStatus("Searching…");
  try {
    const response = await fetch("/search", init);
    const body = await response.json();
    if (!response.ok) {
      render([]);  // never leave an earlier query's results under this error
      setStatus(body.error ? body.error.message : `Error ${response.status}`, true);
      return;
    }
    // weak: under the preset's calibrated floor (probability of a match < 0.5); shown only when asked
    const strong = body.results.filter((r) => !r.weak);
    const shown = $("#show-all").checked ? body.results : strong;
    render(shown);
    const hidden = body.results.length - shown.length;
    if (!strong.length && body.results.length) {
      setStatus(`No strong match${hidden ? ` (${hidden} weak results hidden; tick "weak matches too")` : ""}.`);
    } else {
      setStatus(`${shown.length} results in ${body.took_ms} ms${hidden ? ` (${hidden} weak hidden)` : ""}`);
    }
  } catch (err) {
    render([]);
    setStatus(`The server did not answer: ${err}`, true);
  }
}

function clock(seconds) {  // a moment as a player shows it: 83.4 -> "1:23", 3723 -> "1:02:03"
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

function videoPlayer(result, at) {
  // plays from the matched second (a media fragment; the server answers range requests, so the player seeks),
  // with the matched frame as its poster
  return el("video", { controls: "", preload: "metadata", poster: result.thumb_url || "",
                       src: `${result.media_url}#t=${at.toFixed(2)}`, "data-start": at.toFixed(2),
                       "aria-label": `play ${result.name} from ${clock(at)}` });
}

function card(result, rank) {
  const match = result.match;
  const ordered = result.rerank_score != null ? "re-ranked score" : "fused score";
  const scores = [el("span", { title: `${ordered}: the number this list is ordered by`,
                               text: `${ordered} ${(result.rerank_score ?? result.score).toFixed(4)}` }),
                  el("span", { title: "cosine of the representation that matched (first stage)",
                               text: ` · cosine ${result.first_stage.toFixed(3)}` })];
  if (result.probability != null) {
    scores.push(el("span", { title: "probability that this is a match, from the preset's calibration; under 0.5 is weak",
                             text: ` · p ${result.probability.toFixed(2)}${result.weak ? " (weak)" : ""}` }));
  }
  const children = [];
  const at = match.offset_seconds || 0;
  if (result.modality === "video" && result.media_url) {
    children.push(videoPlayer(result, at));
  } else if (result.thumb_url) {
    children.push(el("a", { href: result.media_url, target: "_blank", rel: "noopener" },
      [el("img", { src: result.thumb_url, alt: result.name, loading: "lazy" })]));
  }
  if (result.modality === "audio" && result.media_url) {
    const start = match.offset_seconds ? `#t=${match.offset_seconds.toFixed(1)}` : "";
    children.push(el("audio", { controls: "", preload: "none", src: result.media_url + start,
                                "aria-label": `play ${result.name}` }));
  }
  children.push(el("div", { class: "name", text: `${rank}. ${result.name}` }));
  if (match.text) children.push(el("div", { class: "snippet", text: match.text }));
  let where = match.offset_seconds != null ? ` @ ${match.offset_seconds.toFixed(1)} s` : "";
  if (result.modality === "video" && match.offset_seconds != null) where = ` at ${clock(at)}`;  // the moment
  children.push(el("div", { class: "meta" }, [
    el("span", { class: "badge", text: `${result.modality} · ${match.kind}${where}` }),
    el("span", { class: "scores" }, scores),
  ]));
  return el("li", { class: "card", tabindex: "0", "data-item": String(result.item_id) }, children);
}

function render(results) {
  const list = $("#results");
  list.replaceChildren(...results.map((r, i) => card(r, i + 1)));
}

async function loadStats() {
  try {
    const response = await fetch("/stats");
    if (!response.ok) return;
    const stats = await response.json();
    const counts = Object.entries(stats.items).map(([m, n]) => `${n} ${m}`).join(", ");
    $("#stats").textContent = `${counts || "empty store"} · preset ${stats.preset}`;
  } catch (err) { /* the page still works without stats */ }
}

function wire() {
  $("#search").addEventListener("submit", (event) => { event.preventDefault(); search(); });
  const drop = $("#drop");
  const picker = $("#file");
  drop.addEventListener("click", (event) => { if (event.target.id !== "clear-file") picker.click(); });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); picker.click(); }
  });
  picker.addEventListener("change", () => setFile(picker.files[0]));
  $("#clear-file").addEventListener("click", () => { picker.value = ""; setFile(null); drop.focus(); });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) setFile(event.dataTransfer.files[0]);
  });
  document.querySelectorAll("input[name=target], #show-all").forEach((box) => box.addEventListener("change", () => {
    if ($("#q").value.trim() || queryFile) search();
  }));
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && document.activeElement !== $("#q")) { event.preventDefault(); $("#q").focus(); }
  });
  loadStats();
}

wire();
