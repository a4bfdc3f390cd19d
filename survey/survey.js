/* The listening-test page: no server, no libraries. It reads window.I2R_SURVEY (stimuli.js, written
 * by `i2r survey-build`), shows the stimuli in an order seeded by the participant ID, keeps every
 * answer in localStorage, refuses incomplete submissions and exports the tidy CSV of survey/README.md. */
"use strict";

(function () {
  const survey = window.I2R_SURVEY;
  const SCALE = [1, 2, 3, 4, 5];
  const RATINGS = [
    { key: "quality", label: "Reverb quality", low: "very poor", high: "excellent" },
    { key: "match", label: "Match with the image", low: "not at all", high: "perfectly" },
  ];
  const CSV_COLUMNS = ["participant", "example", "scene", "source", "quality", "match", "screening_passed", "attention_passed"];
  const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/;
  const $ = (id) => document.getElementById(id);

  if (!survey || !Array.isArray(survey.stimuli) || survey.stimuli.length === 0) {
    $("missing").hidden = false;
    return;
  }
  const storageKey = "i2r-survey:" + survey.id;
  document.title = survey.title;
  $("title").textContent = survey.title;

  /* --- persistence ---------------------------------------------------------------------------- */
  function loadState() {
    try {
      const saved = JSON.parse(window.localStorage.getItem(storageKey) || "null");
      if (saved && typeof saved === "object" && saved.answers) return saved;
    } catch (err) {
      console.warn("stored answers unreadable; starting afresh", err);
    }
    return { participant: "", answers: {}, screening: null, submitted: false };
  }
  let state = loadState();
  function saveState() {
    window.localStorage.setItem(storageKey, JSON.stringify(state));
  }

  /* --- order seeded by the participant ID (FNV-1a hash -> mulberry32 -> Fisher-Yates) ------------ */
  function hash32(text) {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h;
  }
  function mulberry32(seed) {
    let a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function shuffled(items, seedText) {
    const random = mulberry32(hash32(seedText));
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /* --- building the page ------------------------------------------------------------------------ */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function ratingFieldset(itemId, rating) {
    const name = `${rating.key}-${itemId}`;
    const legend = el("legend", { text: `${rating.label} (1 = ${rating.low}, 5 = ${rating.high})` });
    const options = SCALE.map((value) => {
      const id = `${name}-${value}`;
      return el("span", { class: "option" }, [
        el("input", { type: "radio", id, name, value: String(value), "data-item": itemId, "data-rating": rating.key }),
        el("label", { for: id, text: String(value) }),
      ]);
    });
    return el("fieldset", { class: "rating", id: `fs-${name}` }, [legend, el("div", { class: "options" }, options)]);
  }

  function stimulusCard(stimulus, position, total) {
    const headingId = `h-${stimulus.id}`;
    return el("article", { class: "item panel", id: `item-${stimulus.id}`, "aria-labelledby": headingId }, [
      el("h3", { id: headingId, text: `Recording ${position} of ${total}` }),
      el("img", { src: stimulus.image, alt: `Photograph of the space for recording ${position}`, loading: "lazy" }),
      el("audio", { controls: "", preload: "none", src: stimulus.audio, "aria-label": `Recording ${position}` }),
      ratingFieldset(stimulus.id, RATINGS[0]),
      ratingFieldset(stimulus.id, RATINGS[1]),
    ]);
  }

  function attentionCard(check, position) {
    const headingId = `h-${check.id}`;
    return el("article", { class: "item panel", id: `item-${check.id}`, "aria-labelledby": headingId }, [
      el("h3", { id: headingId, text: `Question ${position}` }),
      el("p", { class: "instruction", text: `To show that you are reading carefully, please rate this question ` +
        `${check.quality} for reverb quality and ${check.match} for match.` }),
      ratingFieldset(check.id, RATINGS[0]),
      ratingFieldset(check.id, RATINGS[1]),
    ]);
  }

  function buildScreening() {
    const screening = survey.screening;
    $("screening-question").textContent = screening.question;
    screening.options.forEach((text, index) => {
      const id = `screening-${index}`;
      $("screening-options").appendChild(el("span", { class: "option wide" }, [
        el("input", { type: "radio", id, name: "screening", value: String(index) }),
        el("label", { for: id, text }),
      ]));
    });
  }

  function buildSurvey() {
    const order = shuffled(survey.stimuli, `${survey.id}|${state.participant}`);
    presented = order.map((s) => s.id).concat(survey.attention.map((c) => c.id));
    order.forEach((stimulus, i) => $("items").appendChild(stimulusCard(stimulus, i + 1, order.length)));
    survey.attention.forEach((check, i) => $("checks").appendChild(attentionCard(check, i + 1)));
    buildScreening();
    restoreAnswers();
    updateProgress();
  }

  function restoreAnswers() {
    for (const [itemId, answer] of Object.entries(state.answers)) {
      for (const rating of RATINGS) {
        const input = document.getElementById(`${rating.key}-${itemId}-${answer[rating.key]}`);
        if (input) input.checked = true;
      }
    }
    if (state.screening !== null) {
      const input = document.getElementById(`screening-${state.screening}`);
      if (input) input.checked = true;
    }
  }

  /* --- answers ------------------------------------------------------------------------------------ */
  let presented = [];  // item ids in the order shown: the participant's stimulus order, then the checks

  function missingAnswers() {
    const missing = [];
    if (state.screening === null) missing.push({ target: "screening-fieldset", text: "the screening question" });
    const labels = {};
    document.querySelectorAll("#survey article.item h3").forEach((h) => { labels[h.id.slice(2)] = h.textContent; });
    for (const itemId of presented) {
      const answer = state.answers[itemId] || {};
      for (const rating of RATINGS) {
        if (!answer[rating.key]) {
          missing.push({ target: `fs-${rating.key}-${itemId}`, text: `${labels[itemId]}: ${rating.label.toLowerCase()}` });
        }
      }
    }
    return missing;
  }

  function updateProgress() {
    const total = presented.length * RATINGS.length + 1;
    const done = total - missingAnswers().length;
    $("progress").textContent = `${done} of ${total} answers given`;
  }

  function onChange(event) {
    const input = event.target;
    if (input.name === "screening") {
      state.screening = Number(input.value);
    } else if (input.dataset.item) {
      const answer = state.answers[input.dataset.item] || {};
      answer[input.dataset.rating] = Number(input.value);
      state.answers[input.dataset.item] = answer;
    }
    const fieldset = input.closest("fieldset");
    if (fieldset) fieldset.classList.remove("invalid");
    saveState();
    updateProgress();
    if (!$("errors").hidden) refreshMissing();
  }

  function refreshMissing() {
    const missing = missingAnswers();
    if (missing.length === 0) $("errors").hidden = true;
    else showMissing(missing, false);
  }

  function showMissing(missing, focus) {
    const box = $("errors");
    box.replaceChildren(
      el("h2", { text: `Please answer ${missing.length} more question${missing.length === 1 ? "" : "s"} before submitting` }),
      el("ul", {}, missing.slice(0, 8).map((m) => el("li", {}, [el("a", { href: `#${m.target}`, text: m.text })]))),
    );
    if (missing.length > 8) box.appendChild(el("p", { text: `and ${missing.length - 8} more (outlined in red).` }));
    document.querySelectorAll("fieldset.invalid").forEach((f) => f.classList.remove("invalid"));
    missing.forEach((m) => document.getElementById(m.target).classList.add("invalid"));
    box.hidden = false;
    if (focus) box.focus();
  }

  /* --- export ------------------------------------------------------------------------------------- */
  function csvCell(value) {
    const text = String(value);
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function responsesCsv() {
    const screeningPassed = state.screening === survey.screening.answer;
    const attentionPassed = survey.attention.every((c) => {
      const a = state.answers[c.id] || {};
      return a.quality === c.quality && a.match === c.match;
    });
    const lines = [CSV_COLUMNS.join(",")];
    for (const s of survey.stimuli) {
      const a = state.answers[s.id];
      const row = [state.participant, s.example, s.scene, s.source, a.quality, a.match, screeningPassed, attentionPassed];
      lines.push(row.map(csvCell).join(","));
    }
    return lines.join("\n") + "\n";
  }

  function showDone() {
    $("start").hidden = true;
    $("survey").hidden = true;
    const link = $("download");
    link.href = URL.createObjectURL(new Blob([responsesCsv()], { type: "text/csv" }));
    link.download = `responses_${state.participant}.csv`;
    $("done").hidden = false;
    $("done").focus();
  }

  function onSubmit(event) {
    event.preventDefault();
    const missing = missingAnswers();
    if (missing.length > 0) {
      showMissing(missing, true);
      return;
    }
    $("errors").hidden = true;
    state.submitted = true;
    saveState();
    showDone();
  }

  /* --- start ---------------------------------------------------------------------------------------- */
  function suggestedId() {
    const bytes = new Uint8Array(4);
    window.crypto.getRandomValues(bytes);
    return "p-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function onStart(event) {
    event.preventDefault();
    const input = $("participant");
    const id = input.value.trim();
    if (!ID_PATTERN.test(id)) {
      $("participant-error").textContent = "Please enter an ID of 1-40 letters, digits, '_', '.' or '-', starting with a letter or digit.";
      $("participant-error").hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    state.participant = id;
    saveState();
    showSurvey();
  }

  function showSurvey() {
    $("start").hidden = true;
    buildSurvey();
    $("survey").hidden = false;
  }

  function reset() {
    if (!window.confirm("Clear this participant's stored answers and start again?")) return;
    window.localStorage.removeItem(storageKey);
    window.location.reload();
  }

  $("start-form").addEventListener("submit", onStart);
  $("survey").addEventListener("change", onChange);
  $("survey").addEventListener("submit", onSubmit);
  $("reset").addEventListener("click", reset);

  if (state.submitted) showDone();
  else if (state.participant) showSurvey();
  else {
    $("participant").value = suggestedId();
    $("start").hidden = false;
  }
})();
