// Browser test of the review pages (issue 19): Debian's chromium driven by
// playwright-core against a running `candor serve`; accessibility checked
// with axe-core. Started by scripts/browser-test.sh, which sets:
//   CANDOR_URL        the server (with API keys, a bulk queue and a bulk root)
//   CANDOR_TEST_KEY   an API key of that server
//   CANDOR_CASE_FILES image, audio and text files of one applicant (":"-separated)
//   CANDOR_MANIFEST   a manifest under the server's bulk root
//   CANDOR_SHOTS      where the screenshots go
//   CHROMIUM          the browser (default /usr/bin/chromium)
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(import.meta.url);
const BASE = process.env.CANDOR_URL;
const KEY = process.env.CANDOR_TEST_KEY;
const FILES = process.env.CANDOR_CASE_FILES.split(":");
const MANIFEST = process.env.CANDOR_MANIFEST;
const SHOTS = process.env.CANDOR_SHOTS;
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

let checks = 0;
function ok(cond, what) { assert.ok(cond, what); checks++; console.log("  ok  " + what); }

async function axeCheck(page, what) {
  await page.evaluate(AXE);
  const r = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = r.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const detail = bad.map((v) => `${v.id} (${v.impact}): ${v.help} – ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`).join("\n");
  ok(bad.length === 0, `axe: no serious or critical violations on ${what}${detail ? "\n" + detail : ""}`);
  const minor = r.violations.filter((v) => !bad.includes(v));
  if (minor.length) console.log(`      (minor on ${what}: ${minor.map((v) => v.id).join(", ")})`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
const external = [];
page.on("request", (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith("data:")) external.push(r.url()); });

try {
  console.log("sign-in");
  await page.goto(BASE + "/review");
  ok(page.url().endsWith("/review/login"), "an unsigned browser is sent to the sign-in page");
  await axeCheck(page, "the sign-in page");
  await page.fill("#key", "not the key");
  await page.click("button[type=submit]");
  ok(await page.isVisible("text=That key was not accepted"), "a wrong key is refused");
  await page.fill("#key", KEY);
  await page.click("button[type=submit]");
  await page.waitForURL(BASE + "/review");
  ok(await page.isVisible("h1:has-text('Cases')"), "the key signs in");
  await axeCheck(page, "the cases page");

  console.log("upload a case");
  await page.fill("#applicant", "cand-0042");
  await page.setInputFiles("#files", FILES);
  await page.click("#analyse");
  await page.waitForURL(/\/review\/cases\/[0-9a-f-]+$/, { timeout: 60000 });
  const jobId = page.url().split("/").pop();
  await page.waitForSelector("#verdict-h", { timeout: 300000 });
  const job = await page.evaluate(async (id) => (await fetch("/v1/jobs/" + id)).json(), jobId);
  ok(job.status === "done", "the case's job is done");
  const results = job.response.results;
  ok(results.length === FILES.length, `one section per input (${results.length})`);

  // Labels: each input's label on the page is the API's.
  for (let i = 0; i < results.length; i++) {
    const shown = await page.getAttribute(`#input-${i} [data-label]`, "data-label").catch(() => null);
    ok(shown === (results[i].label ?? null), `input ${i} (${results[i].modality}) shows label ${results[i].label}`);
  }
  const caseLabel = job.response.case.label;
  ok((await page.getAttribute("#case-label", "class")).includes(caseLabel), `the verdict shows ${caseLabel}`);

  // Text: every scored sentence is highlighted, the highest one darkest.
  const ti = results.findIndex((r) => r.modality === "text");
  const spans = results[ti].evidence.filter((e) => e.kind === "text_span");
  const marks = await page.$$eval(`#input-${ti} mark.span`, (ms) => ms.map((m) => ({ s: parseFloat(m.dataset.score), c: m.className, t: m.textContent })));
  ok(spans.length > 0 && marks.length === spans.length, `${marks.length} sentences highlighted, as many as the text spans`);
  const best = spans.reduce((a, b) => (b.score > a.score ? b : a));
  const bestMark = marks.find((m) => Math.abs(m.s - best.score) < 1e-9);
  ok(bestMark && bestMark.t.trim() === best.text.trim(), "the highest-scoring sentence is the one highlighted with its score");
  const quotes = await page.$$eval(`#input-${ti} ol.quotes blockquote`, (q) => q.map((x) => x.textContent.trim()));
  ok(quotes[0] === best.text.trim(), "the top quoted sentence is the highest-scoring one");

  // Picture: the heatmap toggle and the face boxes.
  const ii = results.findIndex((r) => r.modality === "image");
  const pics = results[ii].evidence.filter((e) => e.kind === "picture");
  const regions = results[ii].evidence.filter((e) => e.kind === "image_region");
  ok(pics.length > 0, "the picture has a heatmap");
  ok(await page.isVisible(`#input-${ii} img[data-layer=picture]`), "the picture shows first");
  await page.click(`#input-${ii} button[data-view=pic-0]`);
  ok(await page.isVisible(`#input-${ii} img[data-layer=pic-0]`), "the heatmap button shows the heatmap");
  ok(await page.isHidden(`#input-${ii} img[data-layer=picture]`), "…in place of the picture");
  ok((await page.getAttribute(`#input-${ii} button[data-view=pic-0]`, "aria-pressed")) === "true", "…and says it is pressed");
  if (regions.length) {
    await page.click(`#input-${ii} button[data-view=boxes]`);
    ok(await page.isVisible(`#input-${ii} svg.boxes`), "the face-box button shows the boxes over the picture");
    ok((await page.$$(`#input-${ii} svg.boxes rect`)).length === regions.length, `${regions.length} face boxes drawn`);
  }
  await page.click(`#input-${ii} button[data-view=pic-0]`);

  // Audio: a segment button seeks the player.
  const ai = results.findIndex((r) => r.modality === "audio");
  const segs = await page.$$(`#input-${ai} button.seg`);
  const nseg = results[ai].evidence.filter((e) => e.kind === "audio_segment").length;
  ok(segs.length === nseg && nseg >= 2, `${nseg} audio segments listed`);
  const target = segs[Math.min(2, segs.length - 1)];
  const start = parseFloat(await target.getAttribute("data-start"));
  await page.waitForFunction((id) => document.getElementById(id).readyState >= 1, `audio-${ai}`);
  await target.click();
  await page.waitForTimeout(300);
  const t = await page.$eval(`#audio-${ai}`, (a) => a.currentTime);
  ok(Math.abs(t - start) < 1.0, `clicking the segment at ${start} s seeks the player (at ${t.toFixed(2)} s)`);
  await page.$eval(`#audio-${ai}`, (a) => a.pause());

  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${SHOTS}/case.png`, fullPage: true });
  await axeCheck(page, "the case page");

  // Keyboard: the view buttons are reachable and work with Enter.
  await page.focus(`#input-${ii} button[data-view=picture]`);
  await page.keyboard.press("Enter");
  ok(await page.isVisible(`#input-${ii} img[data-layer=picture]`), "the picture view works from the keyboard");

  console.log("review");
  await page.check("#d-needs_live_check");
  await page.fill("#reviewer", "Dana Reviewer");
  await page.fill("#note", "Voice sounds flat; ask for a live call.");
  await page.click("form.review-form button[type=submit]");
  await page.waitForSelector("ol.reviews li");
  ok((await page.textContent("ol.reviews")).includes("Needs a live check"), "the decision is recorded and shown");
  const csv = await page.evaluate(async () => (await fetch("/review/reviews.csv")).text());
  ok(csv.includes(jobId) && csv.includes("needs_live_check") && csv.includes("Dana Reviewer"), "the decision is in the CSV export");
  await page.goto(BASE + "/review");
  ok((await page.textContent("table.list")).includes("Needs a live check"), "the case list shows the decision");

  console.log("batch");
  await page.goto(BASE + "/review/batches");
  await axeCheck(page, "the batches page");
  await page.fill("#manifest", MANIFEST);
  await page.click("#batch-form button[type=submit]");
  await page.waitForURL(/\/review\/batches\/[^/]+$/, { timeout: 60000 });
  await page.waitForFunction(() => document.getElementById("batch").dataset.finished === "true", null, { timeout: 300000 });
  const total = await page.$eval("#progress", (p) => [p.value, p.max]);
  ok(total[0] === total[1] && total[1] > 0, `the progress bar reached ${total[0]} of ${total[1]} items`);
  const rows = await page.$$eval("#cases tbody tr", (rs) => rs.map((r) => ({ risk: parseFloat(r.dataset.risk), label: r.dataset.label })));
  ok(rows.length >= 3, `${rows.length} applicants listed`);
  await page.click("#cases thead button[data-key=risk]");
  const sorted = await page.$$eval("#cases tbody tr", (rs) => rs.map((r) => parseFloat(r.dataset.risk)));
  ok(sorted.every((v, i) => i === 0 || sorted[i - 1] >= v), "sorting by score puts the riskiest first");
  const someLabel = rows.find((r) => r.label !== "none").label;
  await page.selectOption("#filter", someLabel);
  const shown = await page.$$eval("#cases tbody tr:not([hidden])", (rs) => rs.map((r) => r.dataset.label));
  ok(shown.length > 0 && shown.every((l) => l === someLabel), `the label filter shows only ${someLabel} rows`);
  await page.selectOption("#filter", "");
  const href = await page.getAttribute("#csv", "href");
  const dl = await page.evaluate(async (h) => { const r = await fetch(h); return [r.status, r.headers.get("content-type"), await r.text()]; }, href);
  ok(dl[0] === 200 && dl[1].startsWith("text/csv") && dl[2].split("\n")[0].includes("applicant_id"), "the CSV download answers with the results");
  await page.screenshot({ path: `${SHOTS}/batch.png`, fullPage: true });
  await axeCheck(page, "the batch page");

  ok(external.length === 0, `no request left the server (${external.join(", ")})`);
  ok(errors.length === 0, `no script errors (${errors.join("; ")})`);
  console.log(`browser tests passed: ${checks} checks`);
} finally {
  await browser.close();
}
