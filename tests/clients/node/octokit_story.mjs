// @octokit/rest 22.0.1 against keygate's GitHub deploy-key dialect (research: shared/research/github/REPORT.md).
//
//   KEYGATE_URL=http://127.0.0.1:PORT KEYGATE_TOKEN=... [KEYGATE_REPO=acme/widgets] node octokit_story.mjs
//
// For each base URL (`URL/api/v3`, `URL/api/v3/` and bare `URL`): list (empty), create 5 keys, paginate with
// per_page=2 (needs Link rel="next"; must take 3 pages and return all 5), get, 422 "key is already in use" on a
// duplicate, delete each key then 404 on get, list (empty again). With the trailing-slash base octokit requests
// `/api/v3//repos/...`, which keygate must treat like `/api/v3/repos/...`. Prints `[ok] ...` lines, ends with
// `PASS octokit` (exit 0) or `FAIL <step>: <reason>` (exit 1).
import { Octokit } from "@octokit/rest";
import { bare, expectEqual, expectThrows, newPublicKey, requireEnv } from "./sshkey.mjs";

const url = requireEnv("KEYGATE_URL").replace(/\/+$/, "");
const auth = requireEnv("KEYGATE_TOKEN");
const [owner, repo] = (process.env.KEYGATE_REPO || "acme/widgets").split("/");
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

let step = "start";
function ok(msg) {
  console.log(`[ok] ${step}${msg ? ": " + msg : ""}`);
}

async function story(baseUrl, tag) {
  const octokit = new Octokit({ baseUrl, auth, log: quiet, request: { retries: 0 } });
  const canonical = `${url}${tag === "bare" ? "" : "/api/v3"}/repos/${owner}/${repo}/keys`;

  step = `${tag}: list before`;
  expectEqual(await octokit.paginate(octokit.rest.repos.listDeployKeys, { owner, repo, per_page: 2 }), [], "keys");
  ok();

  step = `${tag}: create 5`;
  const pubs = [0, 1, 2, 3, 4].map((i) => newPublicKey(`octokit-${tag}-${i}@keygate-test`));
  const created = [];
  for (const [i, key] of pubs.entries()) {
    const readOnly = i % 2 === 0;
    const res = await octokit.rest.repos.createDeployKey({ owner, repo, title: `ok-${i}`, key, read_only: readOnly });
    expectEqual(res.status, 201, "create status");
    const d = res.data;
    if (typeof d !== "object" || d === null) throw new Error(`create body was not parsed as JSON: ${String(d)}`);
    if (!Number.isSafeInteger(d.id)) throw new Error(`id is not a safe integer: ${JSON.stringify(d.id)}`);
    expectEqual([d.title, d.read_only, d.key], [`ok-${i}`, readOnly, bare(key)], "created key");
    expectEqual(d.url, `${canonical}/${d.id}`, "created key url");
    created.push(d);
  }
  ok(created.map((d) => d.id).join(","));

  step = `${tag}: paginate per_page=2`;
  let pages = 0;
  const listed = await octokit.paginate(octokit.rest.repos.listDeployKeys, { owner, repo, per_page: 2 }, (res) => {
    pages += 1;
    return res.data;
  });
  expectEqual(
    listed.map((k) => [k.id, k.title, k.read_only, k.key]),
    created.map((k) => [k.id, k.title, k.read_only, k.key]),
    "listed keys (octokit follows Link rel=\"next\")",
  );
  expectEqual(pages, 3, "pages fetched");
  ok(`${listed.length} keys in ${pages} pages`);

  step = `${tag}: get`;
  const got = await octokit.rest.repos.getDeployKey({ owner, repo, key_id: created[1].id });
  expectEqual(got.status, 200, "get status");
  expectEqual([got.data.id, got.data.title, got.data.key], [created[1].id, "ok-1", bare(pubs[1])], "got key");
  ok();

  step = `${tag}: duplicate`;
  const dup = await expectThrows(
    () => octokit.rest.repos.createDeployKey({ owner, repo, title: "ok-dup", key: pubs[1], read_only: true }),
    "duplicate key",
  );
  expectEqual([dup.name, dup.status], ["HttpError", 422], "duplicate error (RequestError name, status)");
  expectEqual((dup.response?.data?.errors || []).map((e) => e.message), ["key is already in use"], "422 errors");
  ok(dup.message);

  step = `${tag}: delete`;
  for (const d of created) {
    const res = await octokit.rest.repos.deleteDeployKey({ owner, repo, key_id: d.id });
    expectEqual(res.status, 204, `delete ${d.id} status`);
    const gone = await expectThrows(
      () => octokit.rest.repos.getDeployKey({ owner, repo, key_id: d.id }),
      `get ${d.id} after delete`,
    );
    expectEqual([gone.name, gone.status], ["HttpError", 404], `get ${d.id} after delete (RequestError name, status)`);
  }
  ok();

  step = `${tag}: list after`;
  expectEqual(await octokit.paginate(octokit.rest.repos.listDeployKeys, { owner, repo, per_page: 2 }), [], "keys");
  ok();
}

try {
  await story(`${url}/api/v3`, "api-v3");
  await story(`${url}/api/v3/`, "api-v3-slash");
  await story(url, "bare");
  console.log("PASS octokit");
} catch (err) {
  const detail = err?.status ? ` (HTTP ${err.status} ${JSON.stringify(err.response?.data)})` : "";
  console.error(`FAIL ${step}: ${err?.message ?? err}${detail}`);
  process.exit(1);
}
