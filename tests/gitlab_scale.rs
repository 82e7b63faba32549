//! GitLab lists at scale (issue 10): totals dropped above 10,000 rows, and keyset pagination on
//! the admin list. Keys are put in through the store in one transaction (what the CLI would do
//! ten thousand times over, in a fraction of the time); everything else goes over HTTP.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Gateway, Resp, links};
use keygate::store::{NewKey, Store};

/// Adds `count` keys attached to `repo`, numbered from `from`, every `public_every`th one
/// instance-wide; returns their ids.
fn bulk_keys(gw: &Gateway, repo: i64, from: usize, count: usize, public_every: usize) -> Vec<i64> {
    let store = Store::open(Path::new(&gw.db)).expect("the gateway's store opens");
    store
        .write(|db| {
            let mut ids = Vec::with_capacity(count);
            for n in from..from + count {
                let sha = format!("SHA256:bulk{n:039}");
                let md5 = format!("{n:047}");
                let id = db.insert_key(&NewKey {
                    fingerprint_sha256: &sha,
                    fingerprint_md5: &md5,
                    key_text: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBulk",
                    kind: "ssh-ed25519",
                    bits: 256,
                    title: "bulk",
                    public: n % public_every == 0,
                    owner_id: None,
                    expires_at: None,
                    created_at: 1,
                })?;
                db.insert_link(repo, id, false, None, 1)?;
                ids.push(id);
            }
            Ok::<_, keygate::store::StoreError>(ids)
        })
        .expect("bulk insert")
}

fn get(gw: &Gateway, token: &str, path: &str) -> Resp {
    gw.req("GET", path).token(token).send().expect(200)
}

/// The path and query of an absolute `Link` URL on this gateway.
fn on_gateway<'a>(gw: &Gateway, url: &'a str) -> &'a str {
    url.strip_prefix(&gw.url)
        .unwrap_or_else(|| panic!("Link URL {url} is not absolute on {}", gw.url))
}

fn ids(res: &Resp) -> Vec<i64> {
    res.json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|k| k["id"].as_i64().expect("id"))
        .collect()
}

#[test]
fn lists_over_ten_thousand_rows_leave_out_their_totals() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let project = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);
    bulk_keys(&gw, seed.widgets, 0, 10_000, 1_000_000);

    // At 10,000 rows everything is counted.
    for path in [project.as_str(), "/api/v4/deploy_keys"] {
        let res = get(&gw, &seed.root, path);
        assert_eq!(res.header("x-total"), Some("10000"), "{path}");
        assert_eq!(res.header("x-total-pages"), Some("500"), "{path}");
        let rels = links(res.header("link").unwrap());
        assert!(rels["last"].ends_with("page=500&per_page=20"), "{path}");
    }

    bulk_keys(&gw, seed.widgets, 10_000, 1, 1_000_000);
    for path in [project.as_str(), "/api/v4/deploy_keys"] {
        let res = get(&gw, &seed.root, path);
        assert_eq!(ids(&res).len(), 20);
        assert_eq!(res.header("x-total"), None, "{path}");
        assert_eq!(res.header("x-total-pages"), None, "{path}");
        assert_eq!(res.header("x-page"), Some("1"));
        assert_eq!(res.header("x-per-page"), Some("20"));
        assert_eq!(res.header("x-next-page"), Some("2"));
        assert_eq!(res.header("x-prev-page"), Some(""));
        let rels = links(res.header("link").unwrap());
        assert!(!rels.contains_key("last"), "{path}: {rels:?}");
        assert!(rels.contains_key("first"));
        let next = on_gateway(&gw, &rels["next"]);
        assert_eq!(ids(&get(&gw, &seed.root, next)).len(), 20);

        // The last page: 10,001 = 500 pages of 20 and one key. It has no next page; past it
        // there is no previous page either, as GitLab (Kaminari) has it.
        let last = get(&gw, &seed.root, &format!("{path}?page=501"));
        assert_eq!(ids(&last).len(), 1);
        assert_eq!(last.header("x-total"), None);
        assert_eq!(last.header("x-next-page"), Some(""));
        assert_eq!(last.header("x-prev-page"), Some("500"));
        let rels = links(last.header("link").unwrap());
        assert!(!rels.contains_key("next") && !rels.contains_key("last"));
        let past = get(&gw, &seed.root, &format!("{path}?page=502"));
        assert!(ids(&past).is_empty());
        assert_eq!(past.header("x-prev-page"), Some(""));
        assert_eq!(past.header("x-next-page"), Some(""));
    }
    // The other filter counts on its own: one instance-wide key in all.
    let res = get(&gw, &seed.root, "/api/v4/deploy_keys?public=true");
    assert_eq!(res.header("x-total"), Some("1"));
    assert_eq!(res.header("x-total-pages"), Some("1"));
}

/// Follows `rel="next"` from `path` to the end; `between` runs after each page.
fn walk(gw: &Gateway, token: &str, path: &str, mut between: impl FnMut(usize)) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut next = Some(path.to_string());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let res = get(gw, token, &path);
        for name in [
            "x-total",
            "x-total-pages",
            "x-page",
            "x-next-page",
            "x-per-page",
        ] {
            assert_eq!(res.header(name), None, "keyset pages have no {name}");
        }
        let page = ids(&res);
        match res.header("link") {
            Some(link) => {
                let rels = links(link);
                assert_eq!(rels.len(), 1, "only rel=next: {link}");
                assert!(!page.is_empty());
                next = Some(on_gateway(gw, &rels["next"]).to_string());
            }
            None => {
                let per_page = path
                    .split("per_page=")
                    .nth(1)
                    .and_then(|rest| rest.split('&').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(20);
                assert!(page.len() < per_page, "only a short page ends the walk");
            }
        }
        seen.extend(page);
        pages += 1;
        between(pages);
        assert!(pages < 100, "the walk does not end");
    }
    seen
}

#[test]
fn keyset_pagination_walks_every_key_once() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let mut keys = bulk_keys(&gw, seed.widgets, 0, 45, 4);

    // Oldest first, while keys go: one already listed and one not yet reached are deleted after
    // page 1, a key added after page 2 (past the cursor) is reached.
    let base = "/api/v4/deploy_keys?pagination=keyset&order_by=id&sort=asc&per_page=10";
    let mut added = Vec::new();
    let seen = walk(&gw, &seed.root, base, |page| {
        let project = format!("/api/v4/projects/{}/deploy_keys", seed.widgets);
        if page == 1 {
            for gone in [keys[3], keys[30]] {
                gw.req("DELETE", &format!("{project}/{gone}"))
                    .token(&seed.root)
                    .send()
                    .expect(204);
            }
        }
        if page == 2 {
            added = bulk_keys(&gw, seed.widgets, 45, 1, 1_000);
        }
    });
    let mut expected: Vec<i64> = keys.iter().copied().filter(|&k| k != keys[30]).collect();
    expected.extend(&added);
    assert_eq!(seen, expected, "every key once, in id order");
    let gone = [keys[3], keys[30]];
    keys.retain(|k| !gone.contains(k));
    keys.extend(&added);

    // Newest first by default, and the cursor is id_before.
    let res = get(
        &gw,
        &seed.root,
        "/api/v4/deploy_keys?pagination=keyset&per_page=5",
    );
    let next = links(res.header("link").unwrap())["next"].clone();
    assert!(
        next.contains(&format!("id_before={}", keys[keys.len() - 5])),
        "{next}"
    );
    assert!(next.contains("pagination=keyset") && next.contains("per_page=5"));
    let newest_first = walk(
        &gw,
        &seed.root,
        "/api/v4/deploy_keys?pagination=keyset&order_by=id",
        |_| {},
    );
    let mut reversed = keys.clone();
    reversed.reverse();
    assert_eq!(newest_first, reversed);

    // `public` is carried along: only instance-wide keys (every fourth), all of them.
    let public = walk(
        &gw,
        &seed.root,
        "/api/v4/deploy_keys?pagination=keyset&order_by=id&sort=asc&public=true&per_page=3",
        |_| {},
    );
    let admin = get(
        &gw,
        &seed.root,
        "/api/v4/deploy_keys?public=true&per_page=100",
    );
    assert_eq!(public, ids(&admin));
    assert_eq!(public.len(), 12);
    assert_eq!(BTreeSet::from_iter(&public).len(), public.len());
}

#[test]
fn keyset_pagination_is_by_id_only() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let res = gw
        .req(
            "GET",
            "/api/v4/deploy_keys?pagination=keyset&order_by=created_at",
        )
        .token(&seed.root)
        .send()
        .expect(405);
    assert_eq!(
        res.json(),
        serde_json::json!({"error": "Keyset pagination is not yet available for this type of request"})
    );
    let res = gw
        .req("GET", "/api/v4/deploy_keys?pagination=keyset&sort=sideways")
        .token(&seed.root)
        .send()
        .expect(400);
    assert_eq!(res.json()["error"], "sort does not have a valid value");
    let res = gw
        .req("GET", "/api/v4/deploy_keys?pagination=keyset&id_after=x")
        .token(&seed.root)
        .send()
        .expect(400);
    assert_eq!(res.json()["error"], "id_after is invalid");
    // Admins only, asked before the parameters, as every other GitLab route.
    gw.req(
        "GET",
        "/api/v4/deploy_keys?pagination=keyset&order_by=created_at",
    )
    .token(&seed.alice)
    .send()
    .expect(403);
    // Without pagination=keyset, order_by is not looked at (GitLab's admin list has none).
    gw.req("GET", "/api/v4/deploy_keys?order_by=created_at")
        .token(&seed.root)
        .send()
        .expect(200);
}
