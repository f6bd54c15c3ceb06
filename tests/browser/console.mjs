// Drives the web console in headless Chromium, as a person would: run by
// crates/cli/tests/e2e/console.rs against a real coordinator and providers.
//
//   node console.mjs <coordinator url> <job id> <screenshot dir>
//
// Exits non-zero, saying which step failed, if any step does; every step leaves a screenshot.

import { chromium } from "playwright-core";
import { existsSync, mkdirSync } from "node:fs";

const [url, job, shots] = process.argv.slice(2);
if (!url || !job || !shots) {
  console.error("usage: node console.mjs <coordinator url> <job id> <screenshot dir>");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const executablePath = process.env.CHROMIUM ||
  ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find(existsSync);
const browser = await chromium.launch({
  executablePath,
  // Root in CI: Chromium's own sandbox needs a user namespace it may not get.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => { if (m.type() === "error") problems.push(`console error: ${m.text()}`); });
page.on("response", (r) => { if (r.status() >= 500) problems.push(`${r.status()} from ${r.url()}`); });

let step = "start";
async function shot(name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}
function check(ok, what) {
  if (!ok) throw new Error(what);
}

try {
  step = "open the console";
  await page.goto(`${url}/`);
  await page.getByTestId("network").waitFor();
  await page.locator("#live.on").waitFor({ timeout: 15_000 });
  const providers = await page.getByTestId("card-providers").locator(".value").innerText();
  check(Number(providers) >= 1, `the network page shows ${providers} active providers`);
  await shot("1-network");

  step = "watch the job reach 100%";
  await page.goto(`${url}/#/jobs/${job}`);
  await page.getByTestId("job").waitFor();
  const seen = new Set();
  const progress = page.getByTestId("job-progress");
  for (let i = 0; i < 600; i++) {
    const pct = await progress.getAttribute("data-percent").catch(() => null);
    if (pct !== null) seen.add(Number(pct));
    if (pct === "100") break;
    await page.waitForTimeout(200);
  }
  check(seen.has(100), `the job page's progress never reached 100% (saw ${[...seen].join(", ")})`);
  await page.getByText("completed", { exact: true }).first().waitFor();
  console.log(`progress seen: ${[...seen].sort((a, b) => a - b).join("% ")}%`);

  step = "see the job's rendered image";
  const image = page.getByTestId("output-image");
  await image.waitFor({ timeout: 15_000 });
  await page.waitForFunction(() => {
    const img = document.querySelector('[data-testid="output-image"]');
    return img && img.complete && img.naturalWidth > 0;
  });
  const size = await image.evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  check(size[0] > 0 && size[1] > 0, `the image has size ${size}`);
  await shot("2-job");

  step = "open the job's PNG";
  const [png] = await Promise.all([
    page.context().waitForEvent("page"),
    page.getByTestId("output-open").click(),
  ]);
  await png.waitForLoadState();
  const response = await png.request.get(`${url}/v1/jobs/${job}/output`);
  check(response.headers()["content-type"] === "image/png", `the output is ${response.headers()["content-type"]}`);
  const body = await response.body();
  check(body.subarray(1, 4).toString() === "PNG", "the output is not a PNG");
  await png.screenshot({ path: `${shots}/3-output.png` });
  await png.close();

  step = "follow a provider link to its earnings";
  const link = page.getByTestId("tasks-table").locator('a[href^="#/providers/"]').first();
  const provider = (await link.getAttribute("href")).split("/").pop();
  await link.click();
  await page.getByTestId("provider").waitFor();
  const earned = await page.getByTestId("provider-earned").innerText();
  check(/^[0-9][0-9,]*(\.[0-9]+)? GRID$/.test(earned) && earned !== "0 GRID", `the provider earned ${earned}`);
  await page.getByTestId("chart-earnings").locator("polyline").waitFor();
  check((await page.getByTestId("history-table").locator("tbody tr").count()) > 0, "the provider has no history");
  await shot("4-provider");
  console.log(`provider ${provider} earned ${earned}`);

  step = "open a block";
  await page.getByRole("link", { name: "Chain" }).click();
  await page.getByTestId("chain").waitFor();
  const block = page.locator('[data-testid^="block-link-"]').first();
  const height = (await block.getAttribute("data-testid")).replace("block-link-", "");
  await block.click();
  await page.getByTestId("block").waitFor();
  const entries = await page.getByTestId("entries-table").locator("tbody tr").count();
  check(entries > 0, `block ${height} shows no entries`);
  await shot("5-block");
  console.log(`block ${height}: ${entries} entries`);

  step = "search for the job";
  await page.fill("#search-input", String(job));
  await page.press("#search-input", "Enter");
  await page.getByTestId("search").waitFor();
  await page.getByRole("link", { name: `Job #${job}` }).click();
  await page.getByTestId("job").waitFor();

  step = "list the jobs";
  await page.getByRole("link", { name: "Jobs", exact: true }).click();
  await page.getByTestId(`job-row-${job}`).waitFor();
  await shot("6-jobs");

  step = "open the governance page";
  await page.getByRole("link", { name: "Governance", exact: true }).click();
  const params = await page.getByTestId("gov-params").innerText();
  check(params.includes("Quorum") && params.includes("33.4%"), `the parameters read: ${params}`);
  const none = await page.getByTestId("no-validators").innerText();
  check(none.includes("One coordinator: no validator set"), `the validators read: ${none}`);
  await page.getByTestId("proposals-table").waitFor();
  await shot("7-governance");

  step = "no errors";
  check(problems.length === 0, problems.join("; "));
  console.log("console test passed");
} catch (e) {
  await shot(`failed-${step.replaceAll(" ", "-")}`).catch(() => {});
  console.error(`step "${step}" failed: ${e.message}`);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
