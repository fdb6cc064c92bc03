// Script of the review pages (served at /assets/review.js; the pages' CSP
// allows no inline script). Requests carry the sign-in cookie.
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function problemText(body, status) {
    if (body && (body.detail || body.title)) return body.detail || body.title;
    return "the server answered " + status;
  }

  // New case: upload, then open the case page.
  var upload = $("#upload");
  if (upload) {
    upload.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var status = $("#upload-status");
      var fd = new FormData();
      Array.prototype.forEach.call($("#files").files, function (f) { fd.append("file", f, f.name); });
      var text = $("#text").value.trim();
      if (text) fd.append("text", text);
      if (!fd.has("file") && !fd.has("text")) { status.textContent = "Choose a file or paste text first."; return; }
      var url = upload.getAttribute("data-action");
      var applicant = $("#applicant").value.trim();
      if (applicant) url += "&applicant_id=" + encodeURIComponent(applicant);
      status.textContent = "Uploading…";
      $("#analyse").disabled = true;
      fetch(url, { method: "POST", body: fd, credentials: "same-origin" })
        .then(function (r) { return r.json().catch(function () { return null; }).then(function (b) { return { r: r, b: b }; }); })
        .then(function (x) {
          if (x.r.status === 202 && x.b && x.b.job_id) { window.location.assign("/review/cases/" + encodeURIComponent(x.b.job_id)); return; }
          status.textContent = "Not accepted: " + problemText(x.b, x.r.status);
          $("#analyse").disabled = false;
        })
        .catch(function (e) { status.textContent = "Upload failed: " + e; $("#analyse").disabled = false; });
    });
  }

  // Case page: wait for the analysis, switch picture views, play segments.
  var kase = $("#case");
  if (kase) {
    var st = kase.getAttribute("data-status");
    if (st === "queued" || st === "running") {
      var job = kase.getAttribute("data-job");
      var poll = function () {
        fetch("/v1/jobs/" + encodeURIComponent(job), { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (b) {
            if (b.status === "done" || b.status === "failed") window.location.reload();
            else setTimeout(poll, 700);
          })
          .catch(function () { setTimeout(poll, 2000); });
      };
      setTimeout(poll, 500);
    }
    $all(".viewer").forEach(function (viewer) {
      var buttons = $all("button.view", viewer);
      buttons.forEach(function (b) {
        b.addEventListener("click", function () {
          var v = b.getAttribute("data-view");
          buttons.forEach(function (o) { o.setAttribute("aria-pressed", o === b ? "true" : "false"); });
          $all("[data-layer]", viewer).forEach(function (layer) {
            var name = layer.getAttribute("data-layer");
            // Face boxes lie over the picture.
            var show = name === v || (v === "boxes" && name === "picture");
            if (show) layer.removeAttribute("hidden"); else layer.setAttribute("hidden", "");
          });
        });
      });
    });
    $all("button.seg").forEach(function (b) {
      b.addEventListener("click", function () {
        var a = document.getElementById(b.getAttribute("data-audio"));
        if (!a) return;
        a.currentTime = parseFloat(b.getAttribute("data-start")) || 0;
        var p = a.play();
        if (p && p.catch) p.catch(function () {});
      });
    });
  }

  // New batch.
  var bf = $("#batch-form");
  if (bf) {
    bf.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var status = $("#batch-status");
      status.textContent = "Submitting…";
      fetch("/v1/batches", {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ manifest: $("#manifest").value.trim() })
      })
        .then(function (r) { return r.json().catch(function () { return null; }).then(function (b) { return { r: r, b: b }; }); })
        .then(function (x) {
          if (x.r.status === 202 && x.b && x.b.batch_id) { window.location.assign("/review/batches/" + encodeURIComponent(x.b.batch_id)); return; }
          status.textContent = "Not accepted: " + problemText(x.b, x.r.status);
        })
        .catch(function (e) { status.textContent = "Failed: " + e; });
    });
  }

  // Batch page: live progress (server-sent events), sorting, filtering.
  var batch = $("#batch");
  if (batch) {
    if (batch.getAttribute("data-finished") !== "true" && window.EventSource) {
      var es = new EventSource("/review/batches/" + encodeURIComponent(batch.getAttribute("data-batch")) + "/events");
      es.addEventListener("progress", function (ev) {
        var s = JSON.parse(ev.data);
        var fin = s.done + s.error + s.cancelled;
        var p = $("#progress");
        p.max = Math.max(s.total, 1); p.value = fin; p.textContent = fin + " of " + s.total;
        $("#progress-text").textContent = fin + " of " + s.total + " items finished (" + s.done + " analysed, " + s.error + " errors, " + s.cancelled + " cancelled)" +
          (s.eta_s ? "; about " + Math.round(s.eta_s) + " s left." : ".");
        if (s.finished && s.completed_at_ms != null) { es.close(); window.location.reload(); }
      });
      es.onerror = function () { /* the browser reconnects by itself */ };
    }
    var table = $("#cases");
    $all("thead button", table).forEach(function (b) {
      b.addEventListener("click", function () {
        var key = b.getAttribute("data-key"), num = b.getAttribute("data-type") === "num";
        var th = b.parentNode;
        var asc = th.getAttribute("aria-sort") !== "ascending";
        if (key === "risk" && !th.hasAttribute("aria-sort")) asc = false;
        $all("thead th", table).forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = $("tbody", table);
        var rows = $all("tr", body);
        rows.sort(function (x, y) {
          var a = x.getAttribute("data-" + key), c = y.getAttribute("data-" + key);
          var d = num ? (parseFloat(a) || -1) - (parseFloat(c) || -1) : a.localeCompare(c);
          return asc ? d : -d;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
    $("#filter").addEventListener("change", function (ev) {
      var want = ev.target.value;
      $all("tbody tr", table).forEach(function (r) {
        if (!want || r.getAttribute("data-label") === want) r.removeAttribute("hidden"); else r.setAttribute("hidden", "");
      });
    });
  }
})();
