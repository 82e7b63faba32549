// @gitbeaker/rest 43.8.0 against keygate's GitLab v4 deploy-key dialect (research: shared/research/gitlab/REPORT.md).
//
//   KEYGATE_URL=http://127.0.0.1:PORT KEYGATE_TOKEN=... [KEYGATE_PROJECT=acme/widgets]
//   [KEYGATE_PROJECT2=acme/tools/cli] node gitbeaker_story.mjs
//
// The token's user must maintain both projects. Story: list (empty), create 23 keys (can_push alternating), list
// them all with the default per_page 20 (gitbeaker needs Link rel="next" to reach the last 3), show, edit title and
// can_push, enable one key on the second project (nested path), remove it from the first project (it stays on the
// second), 404s as GitbeakerRequestError with cause.response.status, clean up. Prints `[ok] ...` lines, ends with
// `PASS gitbeaker` (exit 0) or `FAIL <step>: <reason>` (exit 1).
import { Gitlab, GitbeakerRequestError } from "@gitbeaker/rest";
import { expectEqual, expectThrows, newPublicKey, requireEnv } from "./sshkey.mjs";

const host = requireEnv("KEYGATE_URL").replace(/\/+$/, "");
const token = requireEnv("KEYGATE_TOKEN");
const projectId = process.env.KEYGATE_PROJECT || "acme/widgets";
const project2 = process.env.KEYGATE_PROJECT2 || "acme/tools/cli";
const N = 23;

let step = "start";
function ok(msg) {
  console.log(`[ok] ${step}${msg ? ": " + msg : ""}`);
}

/** `fn` must fail with a GitbeakerRequestError whose response status is `status`; returns its description. */
async function expectStatus(fn, status, what) {
  const err = await expectThrows(fn, what);
  if (!(err instanceof GitbeakerRequestError)) {
    throw new Error(`${what}: expected a GitbeakerRequestError, got ${err?.name}: ${err?.message}`);
  }
  expectEqual(err.cause?.response?.status, status, `${what}: cause.response.status`);
  return err.cause?.description;
}

const api = new Gitlab({ host, token });
const keys = api.DeployKeys;

try {
  step = "list before";
  expectEqual(await keys.all({ projectId }), [], "keys");
  ok();

  step = `create ${N}`;
  const pubs = Array.from({ length: N }, (_, i) => newPublicKey(`gitbeaker-${i}@keygate-test`));
  const created = [];
  for (const [i, key] of pubs.entries()) {
    const canPush = i % 2 === 1;
    // gitbeaker sends {"title","key","can_push"}; the .pub text arrives with its trailing newline
    const k = await keys.create(projectId, `gb-${i}`, `${key}\n`, { canPush });
    if (typeof k !== "object" || k === null) throw new Error(`create body was not parsed as JSON: ${String(k)}`);
    if (!Number.isSafeInteger(k.id)) throw new Error(`id is not an integer: ${JSON.stringify(k.id)}`);
    expectEqual([k.title, k.key, k.can_push], [`gb-${i}`, key, canPush], `created key ${i}`);
    created.push(k);
  }
  expectEqual(new Set(created.map((k) => k.id)).size, N, "distinct ids");
  ok();

  step = "all (follows Link)";
  const listed = await keys.all({ projectId });
  expectEqual(
    listed.map((k) => [k.id, k.title, k.can_push]),
    created.map((k) => [k.id, k.title, k.can_push]),
    `all() over ${N} keys at the default per_page 20`,
  );
  const expanded = await keys.all({ projectId, perPage: 10, showExpanded: true });
  expectEqual(expanded.data.length, N, "all({perPage: 10}) count");
  expectEqual(
    [expanded.paginationInfo.total, expanded.paginationInfo.totalPages, expanded.paginationInfo.current],
    [N, 3, 3],
    "paginationInfo (x-total, x-total-pages, x-page of the last page)",
  );
  ok(`${listed.length} keys`);

  step = "show";
  const shown = await keys.show(projectId, created[4].id);
  expectEqual([shown.id, shown.title, shown.key, shown.can_push], [created[4].id, "gb-4", pubs[4], false], "shown");
  ok();

  step = "edit";
  const target = created[3];
  const edited = await keys.edit(projectId, target.id, { title: "gb-3-renamed", canPush: false });
  expectEqual([edited.id, edited.title, edited.can_push], [target.id, "gb-3-renamed", false], "edit response");
  const reread = await keys.show(projectId, target.id);
  expectEqual([reread.title, reread.can_push], ["gb-3-renamed", false], "after edit");
  ok();

  step = `enable on ${project2}`;
  const enabled = await keys.enable(project2, target.id);
  expectEqual([enabled.id, enabled.key], [target.id, pubs[3]], "enable response");
  const onSecond = await keys.all({ projectId: project2 });
  expectEqual(
    onSecond.map((k) => [k.id, k.can_push]),
    [[target.id, false]],
    `keys of ${project2} (a new link gets can_push=false)`,
  );
  ok();

  step = "remove";
  expectEqual(await keys.remove(projectId, target.id), null, "remove result (204)");
  const gone = await expectStatus(() => keys.show(projectId, target.id), 404, "show after remove");
  expectEqual(gone, "404 Not found", "show after remove: description");
  const stillThere = await keys.show(project2, target.id);
  expectEqual(stillThere.id, target.id, `key still linked to ${project2}`);
  const again = await expectStatus(() => keys.remove(projectId, target.id), 404, "remove twice");
  expectEqual(again, "404 Deploy key Not Found", "remove twice: description");
  await expectStatus(() => keys.enable(projectId, 987654321), 404, "enable unknown key");
  expectEqual((await keys.all({ projectId })).length, N - 1, "keys left");
  ok();

  step = "cleanup";
  await keys.remove(project2, target.id);
  for (const k of created) if (k.id !== target.id) await keys.remove(projectId, k.id);
  expectEqual([await keys.all({ projectId }), await keys.all({ projectId: project2 })], [[], []], "keys after cleanup");
  ok();

  console.log("PASS gitbeaker");
} catch (err) {
  const status = err?.cause?.response?.status;
  const detail = status ? ` (HTTP ${status}: ${JSON.stringify(err.cause?.description)})` : "";
  console.error(`FAIL ${step}: ${err?.message ?? err}${detail}`);
  process.exit(1);
}
