// The upload page's script (served at /assets/index.js; the page's CSP
// allows no inline script).
(function () {
  "use strict";
  var form = document.getElementById("form");
  var statusEl = document.getElementById("status");
  var caseEl = document.getElementById("case");
  var resultsEl = document.getElementById("results");
  var keyEl = document.getElementById("key");
  var button = document.getElementById("submit");
  try { keyEl.value = sessionStorage.getItem("candor-api-key") || ""; } catch (e) {}

  var LABELS = {
    likely_authentic: "Likely authentic",
    inconclusive: "Inconclusive – a person should look",
    likely_manipulated: "Likely AI-made or altered – route to review"
  };

  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      if (k === "class") n.className = attrs[k]; else n.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      n.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return n;
  }
  function pct(x) { return (x * 100).toFixed(1) + " %"; }
  function num(x) { return (typeof x === "number") ? (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3)) : String(x); }

  function table(headers, rows) {
    return el("table", null, [
      el("thead", null, [el("tr", null, headers.map(function (h) { return el("th", null, [h]); }))]),
      el("tbody", null, rows.map(function (r) {
        return el("tr", null, r.map(function (c) { return el("td", null, [c === null || c === undefined ? "" : String(c)]); }));
      }))
    ]);
  }

  function evidenceRow(e) {
    switch (e.kind) {
      case "image_region": return ["region", e.label + " at (" + e.x + ", " + e.y + ") " + e.width + "×" + e.height, e.score != null ? pct(e.score) : ""];
      case "audio_segment": return ["audio", e.start_s.toFixed(1) + " s – " + e.end_s.toFixed(1) + " s" + (e.signal ? " (" + e.signal + ")" : ""), e.score != null ? pct(e.score) : ""];
      case "text_span": return ["text", "chars " + e.start + "–" + e.end + (e.text ? ": “" + e.text + "”" : ""), e.score != null ? pct(e.score) : ""];
      case "fact": return ["fact", e.name + " = " + e.value + (e.source ? " (" + e.source + ")" : ""), ""];
      case "picture": return ["picture", e.name, ""];
      default: return [e.kind || "?", JSON.stringify(e), ""];
    }
  }

  function resultCard(r) {
    var name = (r.input && r.input.name) || "(unnamed input)";
    var card = el("div", { "class": "card" }, [el("h3", null, [name])]);
    var head = el("div", null, [el("span", { "class": "pill" }, [r.modality])]);
    if (r.label) {
      head.appendChild(el("span", { "class": "pill " + r.label }, [LABELS[r.label] || r.label]));
      head.appendChild(el("span", { "class": "score " + r.label }, [pct(r.score)]));
      head.appendChild(el("span", { "class": "muted" }, [" calibrated probability of AI involvement"]));
    } else if (r.abstention) {
      head.appendChild(el("span", { "class": "pill abstained" }, ["No decision"]));
      head.appendChild(el("span", null, [r.abstention.reason + " (" + r.abstention.code + ")"]));
    }
    card.appendChild(head);
    if (r.thresholds) {
      card.appendChild(el("div", { "class": "muted section" }, [
        "Thresholds: authentic below " + pct(r.thresholds.authentic_below) + ", review at or above " +
        pct(r.thresholds.manipulated_at_or_above) + " (chosen for " + pct(r.thresholds.target_fpr) + " false positives on authentic material)"
      ]));
    }
    if (r.signals && r.signals.length) {
      card.appendChild(el("div", { "class": "section" }, [el("strong", null, ["Signals"]),
        table(["signal", "value", "probability", "meaning"], r.signals.map(function (s) {
          return [s.name, num(s.value), s.probability != null ? pct(s.probability) : "", s.detail || ""];
        }))]));
    }
    if (r.evidence && r.evidence.length) {
      card.appendChild(el("div", { "class": "section" }, [el("strong", null, ["Evidence"]),
        table(["kind", "where / what", "score"], r.evidence.map(evidenceRow))]));
      r.evidence.forEach(function (e) {
        if (e.kind === "picture" && /^image\/(png|jpeg|webp)$/.test(e.media_type)) {
          card.appendChild(el("div", { "class": "section" }, [el("div", { "class": "muted" }, [e.name]),
            el("img", { "class": "evidence", alt: e.name, src: "data:" + e.media_type + ";base64," + e.data_base64 })]));
        }
      });
    }
    if (r.warnings && r.warnings.length) {
      card.appendChild(el("div", { "class": "section muted" }, ["Notes: " + r.warnings.join("; ")]));
    }
    var models = (r.models || []).map(function (m) { return m.id + " " + m.version; }).join(", ");
    card.appendChild(el("div", { "class": "section muted" }, [
      "Format: " + r.input.format + ", " + r.input.bytes + " bytes" +
      (r.timings ? ", " + r.timings.total_ms.toFixed(0) + " ms" : "") +
      (models ? " · Models: " + models : " · Models: none")
    ]));
    card.appendChild(el("div", { "class": "mono muted" }, ["sha256 " + r.input.sha256]));
    return card;
  }

  function problemCard(p) {
    return el("div", { "class": "card" }, [
      el("h3", null, [p.name || ("input " + ((p.index || 0) + 1))]),
      el("span", { "class": "pill problem" }, ["Not analysed"]),
      el("span", null, [p.title + ": " + p.detail]),
      p.code ? el("div", { "class": "mono muted" }, ["code " + p.code]) : null
    ]);
  }

  function caseCard(c) {
    var head = c.label
      ? el("span", { "class": "pill " + c.label }, [LABELS[c.label] || c.label])
      : el("span", { "class": "pill abstained" }, ["No input was scored"]);
    var card = el("div", { "class": "card" }, [
      el("h3", null, ["Case summary"]), head,
      el("span", null, [c.needs_review ? "A person should review this case." : "Nothing here needs review."]),
      el("div", { "class": "muted section" }, [c.scored + " of " + c.inputs + " inputs scored" +
        (c.max_score != null ? "; highest score " + pct(c.max_score) : "")])
    ]);
    if (c.reasons && c.reasons.length) {
      card.appendChild(el("ul", null, c.reasons.map(function (x) { return el("li", null, [x]); })));
    }
    return card;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var files = document.getElementById("files").files;
    var text = document.getElementById("text").value;
    if (!files.length && !text.trim()) { statusEl.textContent = "Choose at least one file or paste some text."; return; }
    var data = new FormData();
    for (var i = 0; i < files.length; i++) data.append("file", files[i], files[i].name);
    if (text.trim()) data.append("text", text);
    var headers = {};
    var key = keyEl.value.trim();
    try { sessionStorage.setItem("candor-api-key", key); } catch (e) {}
    if (key) headers["Authorization"] = "Bearer " + key;
    caseEl.textContent = ""; resultsEl.textContent = "";
    statusEl.textContent = "Analysing…"; button.disabled = true;
    var started = Date.now();
    fetch("/v1/analyze", { method: "POST", body: data, headers: headers })
      .then(function (resp) {
        return resp.json().then(function (body) { return { ok: resp.ok, body: body }; },
          function () { return { ok: false, body: { title: "Unexpected response", detail: "HTTP " + resp.status } }; });
      })
      .then(function (r) {
        if (!r.ok) {
          statusEl.textContent = "";
          resultsEl.appendChild(problemCard(r.body));
          return;
        }
        statusEl.textContent = r.body.results.length + " input(s) in " + ((Date.now() - started) / 1000).toFixed(1) + " s · request " + r.body.request_id;
        if (r.body["case"]) caseEl.appendChild(caseCard(r.body["case"]));
        r.body.results.forEach(function (item) {
          resultsEl.appendChild(item.status !== undefined ? problemCard(item) : resultCard(item));
        });
      })
      .catch(function (e) { statusEl.textContent = "Request failed: " + e; })
      .finally(function () { button.disabled = false; });
  });
})();
