//! The GitHub dialect over raw HTTP: every route, header and error, through `/api/v3` and bare paths.

mod common;

use common::{Contract, Gateway, Req, Resp, Seed, fixture, fresh_key, links};
use serde_json::{Value, json};

/// Every route is served under both base URLs a GitHub client may be given.
const PREFIXES: [&str; 2] = ["/api/v3", ""];
const JSON_UTF8: &str = "application/json; charset=utf-8";
const DOCS_REST: &str = "https://docs.github.com/rest";
const DOCS_LIST: &str = "https://docs.github.com/rest/deploy-keys/deploy-keys#list-deploy-keys";
const DOCS_CREATE: &str =
    "https://docs.github.com/rest/deploy-keys/deploy-keys#create-a-deploy-key";
const DOCS_GET: &str = "https://docs.github.com/rest/deploy-keys/deploy-keys#get-a-deploy-key";
const DOCS_DELETE: &str =
    "https://docs.github.com/rest/deploy-keys/deploy-keys#delete-a-deploy-key";
const DOCS_REPO: &str = "https://docs.github.com/rest/repos/repos#get-a-repository";
const INVALID_KEY: &str = "key is invalid. You must supply a key in OpenSSH public key format";
const KEYS: &str = "/repos/{owner}/{repo}/keys";
const KEY: &str = "/repos/{owner}/{repo}/keys/{key_id}";

trait GitHubAuth {
    /// `Authorization: token X`, what every GitHub library sends.
    fn gh(self, token: &str) -> Req;
}

impl GitHubAuth for Req {
    fn gh(self, token: &str) -> Req {
        self.header("Authorization", &format!("token {token}"))
    }
}

fn keys_path(prefix: &str, repo: &str) -> String {
    format!("{prefix}/repos/{repo}/keys")
}

fn basic(status: &str, message: &str, docs: &str) -> Value {
    json!({"message": message, "documentation_url": docs, "status": status})
}

fn validation(code: &str, field: &str, message: Option<&str>) -> Value {
    let mut item = json!({"resource": "PublicKey", "code": code, "field": field});
    if let Some(m) = message {
        item["message"] = json!(m);
    }
    json!({"message": "Validation Failed", "errors": [item], "documentation_url": DOCS_CREATE, "status": "422"})
}

/// Creates a key through the GitHub API and returns its JSON.
fn add(gw: &Gateway, token: &str, prefix: &str, repo: &str, key: &str, read_only: bool) -> Value {
    gw.req("POST", &keys_path(prefix, repo))
        .gh(token)
        .json(&json!({"title": "k", "key": key, "read_only": read_only}))
        .send()
        .expect(201)
        .json()
}

/// Every key row on the instance (GitLab's admin list), to prove a refused create stored nothing.
fn stored(gw: &Gateway, seed: &Seed) -> u64 {
    let res = gw
        .req("GET", "/api/v4/deploy_keys")
        .token(&seed.root)
        .send()
        .expect(200);
    res.header("x-total").unwrap().parse().unwrap()
}

fn is_timestamp(value: &Value) -> bool {
    let s = value.as_str().unwrap_or_default();
    s.len() == 20
        && s.ends_with('Z')
        && s.chars().enumerate().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == 'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn create_get_list_delete_through_both_prefixes() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    for prefix in PREFIXES {
        let key = fresh_key("ci@host");
        let res = gw
            .req("POST", &keys_path(prefix, "acme/widgets"))
            .gh(&seed.alice)
            .json(&json!({"title": "ci", "key": key, "read_only": true}))
            .send()
            .expect(201);
        assert_eq!(res.header("content-type"), Some(JSON_UTF8));
        let body = res.json();
        contract.check(KEYS, "post", 201, &body);
        let id = body["id"].as_i64().unwrap();
        let url = format!("{}{prefix}/repos/acme/widgets/keys/{id}", gw.url);
        assert_eq!(body["url"], url.as_str(), "{prefix}");
        assert_eq!(res.header("location"), Some(url.as_str()));
        let bare: Vec<&str> = key.split(' ').take(2).collect();
        assert_eq!(body["key"], bare.join(" "), "no comment, as on GitHub");
        assert_eq!(
            (&body["title"], &body["read_only"], &body["verified"]),
            (&json!("ci"), &json!(true), &json!(true))
        );
        assert_eq!(
            (&body["added_by"], &body["last_used"], &body["enabled"]),
            (&json!("alice"), &Value::Null, &json!(true))
        );
        assert!(is_timestamp(&body["created_at"]), "{}", body["created_at"]);

        // `read_only` omitted means a read-write key; the core stores the negation as can_push.
        let rw = gw
            .req("POST", &keys_path(prefix, "acme/widgets"))
            .gh(&seed.alice)
            .json(&json!({"title": "rw", "key": fresh_key("rw")}))
            .send()
            .expect(201)
            .json();
        assert_eq!(rw["read_only"], false);
        for (item, can_push) in [(&body, false), (&rw, true)] {
            let gl = gw
                .req(
                    "GET",
                    &format!(
                        "/api/v4/projects/{}/deploy_keys/{}",
                        seed.widgets, item["id"]
                    ),
                )
                .token(&seed.alice)
                .send()
                .expect(200)
                .json();
            assert_eq!(
                gl["can_push"], can_push,
                "same key, same id, through GitLab"
            );
        }

        let got = gw
            .req("GET", &url[gw.url.len()..])
            .gh(&seed.alice)
            .send()
            .expect(200);
        assert_eq!(got.header("content-type"), Some(JSON_UTF8));
        contract.check(KEY, "get", 200, &got.json());
        assert_eq!(got.json(), body);

        let listed = gw
            .req("GET", &keys_path(prefix, "acme/widgets"))
            .gh(&seed.alice)
            .send()
            .expect(200);
        contract.check(KEYS, "get", 200, &listed.json());
        assert_eq!(listed.json(), json!([body, rw]));
        assert_eq!(listed.header("link"), None, "one page: no Link");

        for item in [&body, &rw] {
            let path = &item["url"].as_str().unwrap()[gw.url.len()..];
            let res = gw.req("DELETE", path).gh(&seed.alice).send().expect(204);
            assert!(res.body.is_empty());
            let res = gw.req("GET", path).gh(&seed.alice).send().expect(404);
            assert_eq!(res.json(), basic("404", "Not Found", DOCS_GET));
            contract.check(KEY, "get", 404, &res.json());
            let res = gw.req("DELETE", path).gh(&seed.alice).send().expect(404);
            assert_eq!(res.json(), basic("404", "Not Found", DOCS_DELETE));
            contract.check(KEY, "delete", 404, &res.json());
        }
        assert_eq!(
            stored(&gw, &seed),
            0,
            "a deleted key used nowhere else is gone"
        );
    }
}

#[test]
fn repository_object_and_permissions_by_role() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    for prefix in PREFIXES {
        let path = format!("{prefix}/repos/acme/widgets");
        let res = gw.req("GET", &path).gh(&seed.alice).send().expect(200);
        assert_eq!(res.header("content-type"), Some(JSON_UTF8));
        let repo = res.json();
        contract.check("/repos/{owner}/{repo}", "get", 200, &repo);
        let url = format!("{}{path}", gw.url);
        assert_eq!(repo["id"], seed.widgets);
        assert_eq!(
            (&repo["name"], &repo["full_name"]),
            (&json!("widgets"), &json!("acme/widgets"))
        );
        assert_eq!(repo["url"], url.as_str());
        assert_eq!(repo["keys_url"], format!("{url}/keys{{/key_id}}"));
        assert_eq!(repo["html_url"], format!("{}/acme/widgets", gw.url));
        assert_eq!(repo["private"], true);
        assert_eq!(
            (&repo["owner"]["login"], &repo["owner"]["type"]),
            (&json!("acme"), &json!("Organization"))
        );
        let all =
            json!({"admin": true, "maintain": true, "push": true, "triage": true, "pull": true});
        assert_eq!(repo["permissions"], all, "maintainer");
        let root = gw
            .req("GET", &path)
            .gh(&seed.root)
            .send()
            .expect(200)
            .json();
        assert_eq!(root["permissions"], all, "instance admin, not a member");
        let bob = gw.req("GET", &path).gh(&seed.bob).send().expect(200).json();
        contract.check("/repos/{owner}/{repo}", "get", 200, &bob);
        assert_eq!(
            bob["permissions"],
            json!({"admin": false, "maintain": false, "push": false, "triage": true, "pull": true}),
            "reporter"
        );

        for (who, repo) in [
            (&seed.alice, "other/secret"),
            (&seed.alice, "acme/nothing"),
            (&seed.alice, "nobody/widgets"),
        ] {
            let res = gw
                .req("GET", &format!("{prefix}/repos/{repo}"))
                .gh(who)
                .send()
                .expect(404);
            assert_eq!(res.json(), basic("404", "Not Found", DOCS_REPO), "{repo}");
            contract.check("/repos/{owner}/{repo}", "get", 404, &res.json());
        }
    }
}

#[test]
fn nested_repositories_are_not_reachable() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for prefix in PREFIXES {
        for path in [
            "/repos/acme/tools/cli",
            "/repos/acme/tools/cli/keys",
            "/repos/acme%2Ftools/cli",
            "/repos/acme%2Ftools/cli/keys",
            "/repos/acme/tools%2Fcli/keys",
        ] {
            let res = gw
                .req("GET", &format!("{prefix}{path}"))
                .gh(&seed.alice)
                .send()
                .expect(404);
            assert_eq!(res.json()["message"], "Not Found", "{prefix}{path}");
        }
        let res = gw
            .req("POST", &format!("{prefix}/repos/acme%2Ftools/cli/keys"))
            .gh(&seed.alice)
            .json(&json!({"key": fresh_key("n")}))
            .send()
            .expect(404);
        assert_eq!(res.json()["message"], "Not Found");
    }
    assert_eq!(stored(&gw, &seed), 0);
}

#[test]
fn authenticated_user_and_api_root() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    for prefix in PREFIXES {
        let res = gw
            .req("GET", &format!("{prefix}/user"))
            .gh(&seed.alice)
            .send()
            .expect(200);
        let me = res.json();
        contract.check("/user", "get", 200, &me);
        assert_eq!(
            (&me["login"], &me["type"], &me["site_admin"]),
            (&json!("alice"), &json!("User"), &json!(false))
        );
        let root = gw
            .req("GET", &format!("{prefix}/user"))
            .gh(&seed.root)
            .send()
            .expect(200)
            .json();
        assert_eq!(
            (&root["login"], &root["site_admin"]),
            (&json!("root"), &json!(true))
        );
        let res = gw.req("GET", &format!("{prefix}/user")).send().expect(401);
        assert_eq!(
            res.json(),
            basic("401", "Requires authentication", DOCS_REST)
        );
        contract.check("/user", "get", 401, &res.json());

        let index_paths: Vec<String> = if prefix.is_empty() {
            vec!["/".into()]
        } else {
            vec![prefix.into(), format!("{prefix}/")]
        };
        for path in index_paths {
            // No token needed, as on GitHub.
            let res = gw.req("GET", &path).send().expect(200);
            assert_eq!(res.header("content-type"), Some(JSON_UTF8));
            contract.check("/", "get", 200, &res.json());
            assert_eq!(
                res.json()["current_user_url"],
                format!("{}{prefix}/user", gw.url)
            );
        }
    }
}

/// `Link` relations with their page numbers, in header order.
type Rels = &'static [(&'static str, u64)];

/// The exact `Link` for `rels`, as GitHub writes it, on `base` + `prefix`.
fn expected_link(base: &str, prefix: &str, per_page: u32, rels: &[(&str, u64)]) -> String {
    rels.iter()
        .map(|(rel, page)| {
            format!("<{base}{prefix}/repos/acme/widgets/keys?page={page}&per_page={per_page}>; rel=\"{rel}\"")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn pagination_link_is_exact_and_a_page_past_the_end_is_empty() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    let ids: Vec<Value> = (0..5)
        .map(|i| {
            add(
                &gw,
                &seed.alice,
                "",
                "acme/widgets",
                &fresh_key(&format!("p{i}")),
                i % 2 == 0,
            )["id"]
                .clone()
        })
        .collect();
    for prefix in PREFIXES {
        let page = |query: &str| {
            gw.req(
                "GET",
                &format!("{}?{query}", keys_path(prefix, "acme/widgets")),
            )
            .gh(&seed.alice)
            .send()
            .expect(200)
        };
        let cases: [(&str, usize, Rels); 4] = [
            ("per_page=2", 2, &[("next", 2), ("last", 3)]),
            (
                "per_page=2&page=2",
                2,
                &[("prev", 1), ("next", 3), ("last", 3), ("first", 1)],
            ),
            ("page=3&per_page=2", 1, &[("prev", 2), ("first", 1)]),
            ("page=4&per_page=2", 0, &[("prev", 3), ("first", 1)]),
        ];
        for (query, len, rels) in cases {
            let res = page(query);
            assert_eq!(
                res.json().as_array().unwrap().len(),
                len,
                "{prefix} {query}"
            );
            contract.check(KEYS, "get", 200, &res.json());
            assert_eq!(
                res.header("link"),
                Some(expected_link(&gw.url, prefix, 2, rels).as_str()),
                "{prefix} {query}"
            );
        }
        assert_eq!(page("page=4&per_page=2").body, "[]");

        // Following `next` as PyGithub and octokit do visits every key once, in order.
        let mut seen = Vec::new();
        let mut next = Some(format!("{}?per_page=2", keys_path(prefix, "acme/widgets")));
        while let Some(path) = next {
            let res = gw.req("GET", &path).gh(&seed.alice).send().expect(200);
            seen.extend(
                res.json()
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k["id"].clone()),
            );
            next = res
                .header("link")
                .and_then(|l| links(l).get("next").cloned())
                .map(|url| {
                    url.strip_prefix(&gw.url)
                        .expect("absolute, on our base")
                        .to_string()
                });
        }
        assert_eq!(seen, ids);

        for query in ["", "per_page=abc", "page=0", "per_page=0&page=-3", "page=x"] {
            let res = page(query);
            assert_eq!(res.json().as_array().unwrap().len(), 5, "{query:?}");
            assert_eq!(
                res.header("link"),
                None,
                "{query:?}: everything fits one page"
            );
        }
    }
}

#[test]
fn per_page_is_clamped_to_100() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for i in 0..101 {
        add(
            &gw,
            &seed.alice,
            "",
            "acme/widgets",
            &fresh_key(&format!("c{i}")),
            true,
        );
    }
    let res = gw
        .req("GET", "/api/v3/repos/acme/widgets/keys?per_page=500")
        .gh(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(res.json().as_array().unwrap().len(), 100);
    assert_eq!(
        res.header("link"),
        Some(expected_link(&gw.url, "/api/v3", 100, &[("next", 2), ("last", 2)]).as_str())
    );
    let res = gw
        .req("GET", "/repos/acme/widgets/keys")
        .gh(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(res.json().as_array().unwrap().len(), 30, "default per_page");
    assert_eq!(
        res.header("link"),
        Some(expected_link(&gw.url, "", 30, &[("next", 2), ("last", 4)]).as_str())
    );
}

#[test]
fn public_url_is_used_for_url_location_and_link() {
    let gw = Gateway::start_with(|s| s.public_url = Some("https://keys.example.com/".into()));
    let seed = gw.seed();
    for prefix in PREFIXES {
        let res = gw
            .req("POST", &keys_path(prefix, "acme/widgets"))
            .gh(&seed.alice)
            .json(&json!({"title": "t", "key": fresh_key("pub")}))
            .send()
            .expect(201);
        let url = res.json()["url"].as_str().unwrap().to_string();
        assert!(
            url.starts_with(&format!(
                "https://keys.example.com{prefix}/repos/acme/widgets/keys/"
            )),
            "{url}"
        );
        assert_eq!(res.header("location"), Some(url.as_str()));
        let repo = gw
            .req("GET", &format!("{prefix}/repos/acme/widgets"))
            .gh(&seed.alice)
            .send()
            .expect(200);
        assert_eq!(
            repo.json()["url"],
            format!("https://keys.example.com{prefix}/repos/acme/widgets")
        );
    }
    let res = gw
        .req("GET", "/api/v3/repos/acme/widgets/keys?per_page=1")
        .gh(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(
        res.header("link"),
        Some(
            expected_link(
                "https://keys.example.com",
                "/api/v3",
                1,
                &[("next", 2), ("last", 2)]
            )
            .as_str()
        )
    );
}

#[test]
fn host_header_is_the_base_without_public_url() {
    let gw = Gateway::start();
    let seed = gw.seed();
    add(&gw, &seed.alice, "", "acme/widgets", &fresh_key("h1"), true);
    add(&gw, &seed.alice, "", "acme/widgets", &fresh_key("h2"), true);
    let res = gw
        .req("GET", "/repos/acme/widgets/keys?per_page=1")
        .header("Host", "gh.internal:8443")
        .gh(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(
        res.header("link"),
        Some(
            expected_link(
                "http://gh.internal:8443",
                "",
                1,
                &[("next", 2), ("last", 2)]
            )
            .as_str()
        )
    );
    assert!(
        res.json()[0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://gh.internal:8443/repos/")
    );
}

#[test]
fn double_slashes_are_merged() {
    let gw = Gateway::start();
    let seed = gw.seed();
    // octokit with a trailing-slash baseUrl asks for `//repos/...`.
    let body = gw
        .req("POST", "//repos/acme/widgets//keys")
        .gh(&seed.alice)
        .json(&json!({"title": "t", "key": fresh_key("s1")}))
        .send()
        .expect(201)
        .json();
    assert_eq!(
        body["url"],
        format!("{}/repos/acme/widgets/keys/{}", gw.url, body["id"])
    );
    let body = gw
        .req("POST", "/api/v3//repos/acme/widgets/keys")
        .gh(&seed.alice)
        .json(&json!({"title": "t", "key": fresh_key("s2")}))
        .send()
        .expect(201)
        .json();
    assert_eq!(
        body["url"],
        format!("{}/api/v3/repos/acme/widgets/keys/{}", gw.url, body["id"])
    );
    let res = gw
        .req("GET", "/api/v3//repos//acme/widgets/keys?per_page=1")
        .gh(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(
        res.header("link"),
        Some(expected_link(&gw.url, "/api/v3", 1, &[("next", 2), ("last", 2)]).as_str())
    );
    gw.req(
        "GET",
        &format!("//api/v3/repos/acme/widgets/keys/{}", body["id"]),
    )
    .gh(&seed.alice)
    .send()
    .expect(200);
    gw.req("GET", "//repos/acme/widgets")
        .gh(&seed.alice)
        .send()
        .expect(200);
}

/// Every GitHub route with a method, its contract path and its documentation URL.
fn routes(prefix: &str, key_id: i64) -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("GET", format!("{prefix}/repos/acme/widgets/keys"), KEYS),
        ("POST", format!("{prefix}/repos/acme/widgets/keys"), KEYS),
        (
            "GET",
            format!("{prefix}/repos/acme/widgets/keys/{key_id}"),
            KEY,
        ),
        (
            "DELETE",
            format!("{prefix}/repos/acme/widgets/keys/{key_id}"),
            KEY,
        ),
        (
            "GET",
            format!("{prefix}/repos/acme/widgets"),
            "/repos/{owner}/{repo}",
        ),
        ("GET", format!("{prefix}/user"), "/user"),
    ]
}

#[test]
fn authentication_schemes_and_401s() {
    // Dozens of refused credentials from one address: the failed-login ban (tests/rate_limits.rs)
    // would step in before the last of them.
    let gw = Gateway::start_with(|s| s.rate.ban_max_failures = 0);
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    let id = add(&gw, &seed.alice, "", "acme/widgets", &fresh_key("a"), true)["id"]
        .as_i64()
        .unwrap();
    for prefix in PREFIXES {
        for (method, path, spec) in routes(prefix, id) {
            let body = json!({"title": "t", "key": fresh_key("x")});
            let res = gw.req(method, &path).json(&body).send().expect(401);
            assert_eq!(res.header("content-type"), Some(JSON_UTF8));
            assert_eq!(
                res.json(),
                basic("401", "Requires authentication", DOCS_REST),
                "{method} {path}"
            );
            contract.check(spec, &method.to_lowercase(), 401, &res.json());
            for header in [
                "token nope",
                "Bearer nope",
                "Basic YWxpY2U6eA==",
                "token",
                "token  ",
                "nope",
            ] {
                let res = gw
                    .req(method, &path)
                    .header("Authorization", header)
                    .json(&body)
                    .send()
                    .expect(401);
                assert_eq!(
                    res.json(),
                    basic("401", "Bad credentials", DOCS_REST),
                    "{method} {path} {header}"
                );
            }
        }
        for scheme in ["token", "TOKEN", "Bearer", "bearer", "BEARER"] {
            gw.req("GET", &keys_path(prefix, "acme/widgets"))
                .header("Authorization", &format!("{scheme} {}", seed.alice))
                .send()
                .expect(200);
        }
    }
    assert_eq!(stored(&gw, &seed), 1);
}

#[test]
fn not_found_for_unknown_invisible_or_foreign_things() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    let secret_key = add(&gw, &seed.root, "", "other/secret", &fresh_key("s"), true)["id"]
        .as_i64()
        .unwrap();
    let mine = add(&gw, &seed.alice, "", "acme/widgets", &fresh_key("m"), true)["id"]
        .as_i64()
        .unwrap();
    for prefix in PREFIXES {
        for (token, repo, id) in [
            (&seed.alice, "other/secret", secret_key),
            (&seed.alice, "acme/nothing", mine),
            (&seed.alice, "acme/widgets", 987_654_321),
            (&seed.alice, "acme/widgets", secret_key),
            (&seed.root, "acme/widgets", secret_key),
            (&seed.root, "other/secret", mine),
        ] {
            let key = format!("{}/{id}", keys_path(prefix, repo));
            for (method, path, spec, docs) in [
                ("GET", key.clone(), KEY, DOCS_GET),
                ("DELETE", key.clone(), KEY, DOCS_DELETE),
            ] {
                let res = gw.req(method, &path).gh(token).send().expect(404);
                assert_eq!(
                    res.json(),
                    basic("404", "Not Found", docs),
                    "{method} {path}"
                );
                contract.check(spec, &method.to_lowercase(), 404, &res.json());
            }
        }
        for repo in ["other/secret", "acme/nothing"] {
            let res = gw
                .req("GET", &keys_path(prefix, repo))
                .gh(&seed.alice)
                .send()
                .expect(404);
            assert_eq!(res.json(), basic("404", "Not Found", DOCS_LIST));
            contract.check(KEYS, "get", 404, &res.json());
            // The repository is judged before the body: even a broken key is a 404 here.
            for body in [
                json!({"key": fresh_key("n")}),
                json!({"key": "garbage"}),
                json!({}),
            ] {
                let res = gw
                    .req("POST", &keys_path(prefix, repo))
                    .gh(&seed.alice)
                    .json(&body)
                    .send()
                    .expect(404);
                assert_eq!(res.json(), basic("404", "Not Found", DOCS_CREATE));
                contract.check(KEYS, "post", 404, &res.json());
            }
        }
        let res = gw
            .req("GET", &format!("{}/abc", keys_path(prefix, "acme/widgets")))
            .gh(&seed.alice)
            .send()
            .expect(404);
        assert_eq!(res.json(), basic("404", "Not Found", DOCS_GET));
    }
    // Both keys are still where they were.
    gw.req("GET", &format!("/repos/other/secret/keys/{secret_key}"))
        .gh(&seed.root)
        .send()
        .expect(200);
    gw.req("GET", &format!("/repos/acme/widgets/keys/{mine}"))
        .gh(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(stored(&gw, &seed), 2);
}

#[test]
fn unknown_routes_and_methods_answer_githubs_404() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let id = add(&gw, &seed.alice, "", "acme/widgets", &fresh_key("u"), false)["id"]
        .as_i64()
        .unwrap();
    let mut cases: Vec<(&str, String)> = vec![
        ("GET", "/api/v3/nothing".into()),
        ("GET", "/api/v3/repos".into()),
    ];
    for prefix in PREFIXES {
        cases.extend([
            ("GET", format!("{prefix}/repos/acme")),
            ("GET", format!("{prefix}/repos/acme/widgets/hooks")),
            (
                "GET",
                format!("{prefix}/repos/acme/widgets/keys/{id}/extra"),
            ),
            // Deploy keys are immutable, as on GitHub.
            ("PATCH", format!("{prefix}/repos/acme/widgets/keys/{id}")),
            ("PUT", format!("{prefix}/repos/acme/widgets/keys/{id}")),
            ("DELETE", format!("{prefix}/repos/acme/widgets/keys")),
            ("POST", format!("{prefix}/repos/acme/widgets")),
            ("POST", format!("{prefix}/user")),
        ]);
    }
    for (method, path) in cases {
        let res = gw
            .req(method, &path)
            .gh(&seed.alice)
            .json(&json!({"title": "renamed", "read_only": true}))
            .send()
            .expect(404);
        assert_eq!(
            res.header("content-type"),
            Some(JSON_UTF8),
            "{method} {path}"
        );
        assert_eq!(
            res.json(),
            basic("404", "Not Found", DOCS_REST),
            "{method} {path}"
        );
        assert!(
            res.header("x-github-request-id").is_some(),
            "{method} {path}"
        );
    }
    let key = gw
        .req("GET", &format!("/repos/acme/widgets/keys/{id}"))
        .gh(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(
        (&key.json()["title"], &key.json()["read_only"]),
        (&json!("k"), &json!(false))
    );

    // The GitLab dialect keeps its legacy v3 routes under /api/v3, and the global 404 elsewhere.
    for legacy in ["keys", "deploy_keys"] {
        let res = gw
            .req(
                "GET",
                &format!("/api/v3/projects/{}/{legacy}", seed.widgets),
            )
            .token(&seed.alice)
            .send()
            .expect(200);
        assert_eq!(res.json()[0]["id"], id);
        assert!(res.json()[0].get("can_push").is_some(), "GitLab's shape");
    }
    let res = gw.req("GET", "/nothing-here").send().expect(404);
    assert_eq!(res.json(), json!({"error": "404 Not Found"}));
}

#[test]
fn reporters_and_read_only_tokens_get_403() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    let id = add(&gw, &seed.alice, "", "acme/widgets", &fresh_key("f"), true)["id"]
        .as_i64()
        .unwrap();
    let admin = "Must have admin rights to Repository.";
    let scope = "Resource not accessible by personal access token";
    for prefix in PREFIXES {
        let keys = keys_path(prefix, "acme/widgets");
        let key = format!("{keys}/{id}");
        for (method, path, spec, docs) in [
            ("GET", &keys, KEYS, DOCS_LIST),
            ("GET", &key, KEY, DOCS_GET),
            ("DELETE", &key, KEY, DOCS_DELETE),
        ] {
            let res = gw.req(method, path).gh(&seed.bob).send().expect(403);
            assert_eq!(res.json(), basic("403", admin, docs), "{method} {path}");
            contract.check(spec, &method.to_lowercase(), 403, &res.json());
        }
        // The role is judged before the body: a reporter's broken key is still a 403.
        for body in [
            json!({"key": fresh_key("b")}),
            json!({"key": "garbage"}),
            json!({}),
        ] {
            let res = gw
                .req("POST", &keys)
                .gh(&seed.bob)
                .json(&body)
                .send()
                .expect(403);
            assert_eq!(res.json(), basic("403", admin, DOCS_CREATE));
            contract.check(KEYS, "post", 403, &res.json());
        }
        // carol maintains the repository but her token is read-only: reads work, writes do not.
        gw.req("GET", &keys).gh(&seed.carol).send().expect(200);
        gw.req("GET", &key).gh(&seed.carol).send().expect(200);
        let res = gw
            .req("POST", &keys)
            .gh(&seed.carol)
            .json(&json!({"key": fresh_key("c")}))
            .send()
            .expect(403);
        assert_eq!(res.json(), basic("403", scope, DOCS_CREATE));
        contract.check(KEYS, "post", 403, &res.json());
        let res = gw.req("DELETE", &key).gh(&seed.carol).send().expect(403);
        assert_eq!(res.json(), basic("403", scope, DOCS_DELETE));
    }
    gw.req("GET", &format!("/repos/acme/widgets/keys/{id}"))
        .gh(&seed.alice)
        .send()
        .expect(200);
    assert_eq!(stored(&gw, &seed), 1);
}

fn refused(gw: &Gateway, seed: &Seed, prefix: &str, body: &Value) -> Resp {
    let res = gw
        .req("POST", &keys_path(prefix, "acme/widgets"))
        .gh(&seed.alice)
        .json(body)
        .send()
        .expect(422);
    assert_eq!(res.header("content-type"), Some(JSON_UTF8));
    Contract::load("github.yaml").check(KEYS, "post", 422, &res.json());
    res
}

#[test]
fn invalid_keys_are_validation_failed_and_nothing_is_stored() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for prefix in PREFIXES {
        for file in [
            "broken-base64.pub",
            "truncated.pub",
            "not-a-key.pub",
            "mismatched-type.pub",
        ] {
            let res = refused(
                &gw,
                &seed,
                prefix,
                &json!({"title": "t", "key": fixture(file)}),
            );
            assert_eq!(
                res.json(),
                validation("custom", "key", Some(INVALID_KEY)),
                "{file}"
            );
        }
        let res = refused(
            &gw,
            &seed,
            prefix,
            &json!({"title": "t", "key": "x".repeat(5001)}),
        );
        assert_eq!(res.json(), validation("custom", "key", Some(INVALID_KEY)));
        let res = refused(
            &gw,
            &seed,
            prefix,
            &json!({"title": "t", "key": fixture("dsa-1024.pub")}),
        );
        let message = res.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.starts_with("key is invalid. Its type is not allowed"),
            "{message}"
        );
        let res = refused(
            &gw,
            &seed,
            prefix,
            &json!({"title": "t", "key": fixture("rsa-1024.pub")}),
        );
        assert_eq!(
            res.json(),
            validation(
                "custom",
                "key",
                Some("key is weak. RSA keys must be at least 2048 bits")
            )
        );
        for body in [
            json!({"title": "t"}),
            json!({"title": "t", "key": null}),
            json!({}),
        ] {
            let res = refused(&gw, &seed, prefix, &body);
            assert_eq!(
                res.json(),
                validation("missing_field", "key", None),
                "{body}"
            );
        }
        for blank in ["", "  \n"] {
            let res = refused(&gw, &seed, prefix, &json!({"title": "t", "key": blank}));
            assert_eq!(res.json(), validation("missing_field", "key", None));
        }
        let res = refused(
            &gw,
            &seed,
            prefix,
            &json!({"title": "t".repeat(256), "key": fresh_key("x")}),
        );
        assert_eq!(
            res.json(),
            validation(
                "custom",
                "title",
                Some("title is too long (maximum is 255 characters)")
            )
        );
        for (body, field, expected) in [
            (json!({"key": 5}), "key", "string"),
            (json!({"key": [fresh_key("x")]}), "key", "string"),
            (
                json!({"key": fresh_key("x"), "title": 7}),
                "title",
                "string",
            ),
            (
                json!({"key": fresh_key("x"), "read_only": "yes"}),
                "read_only",
                "boolean",
            ),
            (
                json!({"key": fresh_key("x"), "read_only": 1}),
                "read_only",
                "boolean",
            ),
        ] {
            let res = refused(&gw, &seed, prefix, &body);
            let message = format!(
                "Invalid request.\n\nFor 'properties/{field}', the value is not a {expected}."
            );
            assert_eq!(res.json(), basic("422", &message, DOCS_CREATE), "{body}");
        }
    }
    assert_eq!(stored(&gw, &seed), 0);
}

#[test]
fn private_keys_are_refused_by_name_and_never_echoed() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for prefix in PREFIXES {
        for file in [
            "private-openssh-ed25519.key",
            "private-pem-rsa.key",
            "private-pkcs8.key",
        ] {
            let secret = fixture(file);
            let res = refused(&gw, &seed, prefix, &json!({"title": "oops", "key": secret}));
            let message = res.json()["errors"][0]["message"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                message.starts_with("key is invalid. It is a private key"),
                "{message}"
            );
            for line in secret
                .lines()
                .filter(|l| l.len() > 20 && !l.starts_with("-----"))
            {
                assert!(
                    !res.body.contains(line),
                    "{file}: the response echoes key material"
                );
            }
        }
    }
    assert_eq!(stored(&gw, &seed), 0);
}

#[test]
fn a_key_is_a_deploy_key_of_one_repository_only() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let in_use = validation("custom", "key", Some("key is already in use"));
    let key = fresh_key("once");
    add(&gw, &seed.alice, "", "acme/widgets", &key, true);
    for prefix in PREFIXES {
        let res = refused(
            &gw,
            &seed,
            prefix,
            &json!({"title": "again", "key": key, "read_only": false}),
        );
        assert_eq!(res.json(), in_use, "same repository");
        // Another repository, another user: still in use.
        let res = gw
            .req("POST", &keys_path(prefix, "other/secret"))
            .gh(&seed.root)
            .json(&json!({"key": key}))
            .send()
            .expect(422);
        assert_eq!(res.json(), in_use, "other repository");
    }
    // A key GitLab attached to a (nested) repository is in use too.
    let gl_key = fresh_key("gitlab");
    gw.req(
        "POST",
        &format!("/api/v4/projects/{}/deploy_keys", seed.cli_repo),
    )
    .token(&seed.alice)
    .json(&json!({"title": "gl", "key": gl_key}))
    .send()
    .expect(201);
    let res = refused(&gw, &seed, "", &json!({"key": gl_key}));
    assert_eq!(res.json(), in_use);
    assert_eq!(stored(&gw, &seed), 2);
}

#[test]
fn malformed_bodies_are_400_and_large_ones_413() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    let problems = basic("400", "Problems parsing JSON", DOCS_CREATE);
    for prefix in PREFIXES {
        let path = keys_path(prefix, "acme/widgets");
        let key = fresh_key("b");
        for (content_type, body) in [
            ("application/json", b"{\"title\": ".to_vec()),
            ("application/json", b"[]".to_vec()),
            ("application/json", b"\"key\"".to_vec()),
            (
                "text/plain",
                format!("{{\"key\": \"{key}\"}}x").into_bytes(),
            ),
            (
                "application/x-www-form-urlencoded",
                format!("title=t&key={key}").into_bytes(),
            ),
        ] {
            let res = gw
                .req("POST", &path)
                .gh(&seed.alice)
                .raw_body(content_type, body)
                .send()
                .expect(400);
            assert_eq!(res.header("content-type"), Some(JSON_UTF8));
            assert_eq!(res.json(), problems, "{content_type}");
            contract.check(KEYS, "post", 400, &res.json());
        }
        // GitHub reads JSON whatever the Content-Type says.
        gw.req("POST", &path)
            .gh(&seed.alice)
            .raw_body(
                "text/plain",
                json!({"key": fresh_key(prefix)}).to_string().into_bytes(),
            )
            .send()
            .expect(201);
        let res = gw
            .req("POST", &path)
            .gh(&seed.alice)
            .json(&json!({"title": "x".repeat(70_000), "key": fresh_key("big")}))
            .send()
            .expect(413);
        assert_eq!(res.json(), basic("413", "Payload Too Large", DOCS_CREATE));
        contract.check(KEYS, "post", 413, &res.json());
    }
    // Without a token the answer is 401 whatever the body.
    let res = gw
        .req("POST", "/repos/acme/widgets/keys")
        .raw_body("application/json", b"{".to_vec())
        .send()
        .expect(401);
    assert_eq!(res.json()["message"], "Requires authentication");
    assert_eq!(stored(&gw, &seed), 2);
}

#[test]
fn title_defaults_to_the_key_comment() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let with_comment = fresh_key("deploy@ci");
    let body = add_raw(&gw, &seed, &json!({"key": with_comment}));
    assert_eq!(body["title"], "deploy@ci");
    let body = add_raw(
        &gw,
        &seed,
        &json!({"key": fresh_key("blank@ci"), "title": "  "}),
    );
    assert_eq!(body["title"], "blank@ci");
    let bare: String = fresh_key("x").rsplit_once(' ').unwrap().0.to_string();
    let body = add_raw(&gw, &seed, &json!({"key": bare, "title": null}));
    assert_eq!(body["title"], "ssh-ed25519");
}

fn add_raw(gw: &Gateway, seed: &Seed, body: &Value) -> Value {
    gw.req("POST", "/api/v3/repos/acme/widgets/keys")
        .gh(&seed.alice)
        .json(body)
        .send()
        .expect(201)
        .json()
}

#[test]
fn api_version_header_is_checked_and_echoed() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    for prefix in PREFIXES {
        let path = keys_path(prefix, "acme/widgets");
        let res = gw.req("GET", &path).gh(&seed.alice).send().expect(200);
        assert_eq!(
            res.header("x-github-api-version-selected"),
            Some("2022-11-28")
        );
        for version in ["2022-11-28", "2026-03-10"] {
            let res = gw
                .req("GET", &path)
                .header("X-GitHub-Api-Version", version)
                .gh(&seed.alice)
                .send()
                .expect(200);
            assert_eq!(res.header("x-github-api-version-selected"), Some(version));
        }
        for version in ["2021-01-01", "v3", ""] {
            for method in ["GET", "POST"] {
                let res = gw
                    .req(method, &path)
                    .header("X-GitHub-Api-Version", version)
                    .gh(&seed.alice)
                    .json(&json!({"key": fresh_key("v")}))
                    .send()
                    .expect(400);
                let message = format!(
                    "The version you specified in the \"X-GitHub-API-Version\" request header, \"{version}\", \
                     is not a supported version. The following versions are currently supported: \
                     \"2026-03-10\" (most recent), \"2022-11-28\"."
                );
                assert_eq!(
                    res.json(),
                    basic(
                        "400",
                        &message,
                        "https://docs.github.com/rest/about-the-rest-api/api-versions"
                    )
                );
                contract.check(KEYS, &method.to_lowercase(), 400, &res.json());
            }
        }
    }
    assert_eq!(stored(&gw, &seed), 0, "a refused version stores nothing");
}

#[test]
fn github_headers_are_on_every_response() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let id = add(&gw, &seed.alice, "", "acme/widgets", &fresh_key("h"), true)["id"]
        .as_i64()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for prefix in PREFIXES {
        let key = format!("{}/{id}", keys_path(prefix, "acme/widgets"));
        let responses = [
            gw.req("GET", &keys_path(prefix, "acme/widgets"))
                .gh(&seed.alice)
                .send()
                .expect(200),
            gw.req("GET", &format!("{prefix}/repos/acme/widgets"))
                .gh(&seed.alice)
                .send()
                .expect(200),
            gw.req("POST", &keys_path(prefix, "acme/widgets"))
                .gh(&seed.alice)
                .json(&json!({"key": "no"}))
                .send()
                .expect(422),
            gw.req("GET", &key).send().expect(401),
            gw.req("GET", &format!("{prefix}/repos/acme/widgets/nothing"))
                .send()
                .expect(404),
            gw.req("GET", &key)
                .header("X-GitHub-Api-Version", "1")
                .send()
                .expect(400),
        ];
        // The first three carry alice's token and are counted against her budget; the others
        // are counted against no one and report no budget.
        for (i, res) in responses.into_iter().enumerate() {
            let request_id = res.header("x-request-id").expect("x-request-id");
            assert_eq!(res.header("x-github-request-id"), Some(request_id));
            assert_eq!(request_id.len(), 32);
            if i < 3 {
                assert_eq!(res.header("x-ratelimit-limit"), Some("5000"));
                let used: u64 = res.header("x-ratelimit-used").unwrap().parse().unwrap();
                let remaining: u64 = res
                    .header("x-ratelimit-remaining")
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(used >= 2, "the key added above was counted too");
                assert_eq!(used + remaining, 5000);
                assert_eq!(res.header("x-ratelimit-resource"), Some("core"));
                let reset: u64 = res.header("x-ratelimit-reset").unwrap().parse().unwrap();
                assert!(reset > now, "reset is in the future");
            } else {
                assert_eq!(res.header("x-ratelimit-limit"), None);
            }
            assert_eq!(
                res.header("x-github-media-type"),
                Some("github.v3; format=json")
            );
            assert_eq!(res.header("content-type"), Some(JSON_UTF8));
        }
    }
    let res = gw
        .req("DELETE", &format!("/repos/acme/widgets/keys/{id}"))
        .gh(&seed.alice)
        .send()
        .expect(204);
    assert!(res.header("x-github-request-id").is_some());
    assert!(res.body.is_empty());
}

#[test]
fn keys_added_through_gitlab_are_seen_with_the_same_id() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let key = fresh_key("from-gitlab");
    let gl = gw
        .req(
            "POST",
            &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
        )
        .token(&seed.alice)
        .json(&json!({"title": "gl", "key": key, "can_push": true}))
        .send()
        .expect(201)
        .json();
    let gh = gw
        .req("GET", &format!("/repos/acme/widgets/keys/{}", gl["id"]))
        .gh(&seed.alice)
        .send()
        .expect(200)
        .json();
    assert_eq!(
        (&gh["id"], &gh["title"], &gh["read_only"]),
        (&gl["id"], &json!("gl"), &json!(false))
    );
    assert_eq!(gh["added_by"], "alice");
    assert_eq!(
        format!("{} from-gitlab", gh["key"].as_str().unwrap()),
        gl["key"].as_str().unwrap()
    );
}

#[test]
fn the_contract_is_served_and_covers_every_route() {
    let gw = Gateway::start();
    let res = gw.req("GET", "/api/v3/openapi.yaml").send().expect(200);
    assert_eq!(res.header("content-type"), Some("application/yaml"));
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dialects/github.yaml"))
            .unwrap();
    assert_eq!(res.body, file);
    let contract = Contract::load("github.yaml");
    let doc = contract.doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(!file.contains("nullable"), "3.1 uses type: [x, 'null']");
    let servers: Vec<&str> = doc["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["url"].as_str().unwrap())
        .collect();
    assert_eq!(servers, ["/api/v3", "/"]);
    let mut served: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters" && *k != "servers")
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect();
    served.sort();
    let expected = [
        ("/", "get"),
        ("/graphql", "post"),
        ("/meta", "get"),
        ("/openapi.yaml", "get"),
        ("/rate_limit", "get"),
        ("/repos/{owner}/{repo}", "get"),
        ("/repos/{owner}/{repo}/keys", "get"),
        ("/repos/{owner}/{repo}/keys", "post"),
        ("/repos/{owner}/{repo}/keys/{key_id}", "delete"),
        ("/repos/{owner}/{repo}/keys/{key_id}", "get"),
        ("/user", "get"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(served, expected);
    // GraphQL sits beside `/api/v3` on GHES, so its path item names its own bases.
    let graphql_servers: Vec<&str> = doc["paths"]["/graphql"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["url"].as_str().unwrap())
        .collect();
    assert_eq!(graphql_servers, ["/api", "/"]);
    // Only served under /api/v3: bare `/openapi.yaml` is not a GitHub route.
    gw.req("GET", "/openapi.yaml").send().expect(404);
}

// ---------- Basic auth ----------

fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[test]
fn basic_auth_takes_the_token_as_the_password() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    let key = add(&gw, &seed.alice, "", "acme/widgets", &fresh_key("b"), true);
    for prefix in PREFIXES {
        // The username is ignored, as GitHub ignores it for tokens: the token says who this is.
        for user in ["alice", "someone-else", ""] {
            let res = gw
                .req("GET", &keys_path(prefix, "acme/widgets"))
                .header("Authorization", &basic_auth(user, &seed.alice))
                .send()
                .expect(200);
            let list = res.json();
            contract.check(KEYS, "get", 200, &list);
            assert_eq!(list[0]["id"], key["id"], "{prefix} user={user:?}");
            let me = gw
                .req("GET", &format!("{prefix}/user"))
                .header("Authorization", &basic_auth(user, &seed.alice))
                .send()
                .expect(200)
                .json();
            assert_eq!(me["login"], "alice");
        }
        // The old `TOKEN:x-oauth-basic` (and `TOKEN:`) spelling puts the token in the username.
        for password in ["x-oauth-basic", ""] {
            let me = gw
                .req("GET", &format!("{prefix}/user"))
                .header("Authorization", &basic_auth(&seed.bob, password))
                .send()
                .expect(200)
                .json();
            assert_eq!(me["login"], "bob");
        }
        // A read-only token stays read-only however it is sent.
        gw.req("POST", &keys_path(prefix, "acme/widgets"))
            .header("Authorization", &basic_auth("carol", &seed.carol))
            .json(&json!({"key": fresh_key("ro")}))
            .send()
            .expect(403);
        for header in [
            basic_auth("alice", "wrong"),
            basic_auth("alice", &format!("{}x", seed.alice)),
            basic_auth(&seed.alice, "not-x-oauth-basic"),
            "Basic !!!not-base64".to_string(),
            "Basic".to_string(),
            format!("basic {}", "bm8tY29sb24="),
        ] {
            let res = gw
                .req("GET", &keys_path(prefix, "acme/widgets"))
                .header("Authorization", &header)
                .send()
                .expect(401);
            assert_eq!(res.header("content-type"), Some(JSON_UTF8));
            assert_eq!(res.json(), basic("401", "Bad credentials", DOCS_REST));
            contract.check(KEYS, "get", 401, &res.json());
        }
    }
}

// ---------- /meta and /rate_limit ----------

#[test]
fn meta_is_the_ghes_form_without_a_token() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    for prefix in PREFIXES {
        for res in [
            gw.req("GET", &format!("{prefix}/meta")).send(),
            gw.req("GET", &format!("{prefix}/meta"))
                .gh(&seed.bob)
                .send(),
        ] {
            let res = res.expect(200);
            assert_eq!(res.header("content-type"), Some(JSON_UTF8));
            assert!(res.header("x-github-request-id").is_some());
            let meta = res.json();
            contract.check("/meta", "get", 200, &meta);
            assert_eq!(meta["verifiable_password_authentication"], false);
            assert_eq!(meta["installed_version"], "3.19.0");
        }
        gw.req("POST", &format!("{prefix}/meta")).send().expect(404);
    }
}

/// The `X-RateLimit-*` numbers of a response, in `/rate_limit`'s field names.
fn rate_headers(res: &Resp) -> Value {
    let num = |name: &str| -> u64 {
        res.header(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .parse()
            .unwrap()
    };
    json!({
        "limit": num("x-ratelimit-limit"),
        "remaining": num("x-ratelimit-remaining"),
        "reset": num("x-ratelimit-reset"),
        "used": num("x-ratelimit-used"),
    })
}

#[test]
fn rate_limit_reports_the_numbers_of_the_headers() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    for prefix in PREFIXES {
        let before = gw
            .req("GET", &keys_path(prefix, "acme/widgets"))
            .gh(&seed.alice)
            .send()
            .expect(200);
        let res = gw
            .req("GET", &format!("{prefix}/rate_limit"))
            .gh(&seed.alice)
            .send()
            .expect(200);
        let after = gw
            .req("GET", &format!("{prefix}/user"))
            .gh(&seed.alice)
            .send()
            .expect(200);
        let body = res.json();
        contract.check("/rate_limit", "get", 200, &body);
        let core = &body["resources"]["core"];
        // `reset` is the end of the hour: equal unless the hour turned between the two calls.
        let (h1, h2) = (rate_headers(&before), rate_headers(&after));
        assert!(
            *core == h1 || *core == h2,
            "/rate_limit {core} vs headers {h1} / {h2}"
        );
        assert_eq!(rate_headers(&res), *core, "its own headers agree");
        assert_eq!(body["rate"], *core, "`rate` mirrors `resources.core`");
        for bucket in ["graphql", "search"] {
            assert_eq!(body["resources"][bucket]["limit"], core["limit"]);
            assert_eq!(body["resources"][bucket]["remaining"], core["remaining"]);
        }
        assert_eq!(
            core["used"].as_u64().unwrap() + core["remaining"].as_u64().unwrap(),
            core["limit"].as_u64().unwrap()
        );
        assert_eq!(res.header("x-ratelimit-resource"), Some("core"));
        // Asking is free: a second look reports the same remaining budget.
        let again = gw
            .req("GET", &format!("{prefix}/rate_limit"))
            .gh(&seed.alice)
            .send()
            .expect(200)
            .json();
        assert_eq!(
            again["resources"]["core"],
            rate_headers(&after),
            "the /user after it spent one, the two looks nothing"
        );
        // No token is needed: the answer is a budget no one has spent yet.
        let anonymous = gw
            .req("GET", &format!("{prefix}/rate_limit"))
            .send()
            .expect(200)
            .json();
        assert_eq!(anonymous["resources"]["core"]["used"], 0);
        assert_eq!(anonymous["resources"]["core"]["remaining"], core["limit"]);
        let res = gw
            .req("GET", &format!("{prefix}/rate_limit"))
            .gh("nope")
            .send()
            .expect(401);
        assert_eq!(res.json(), basic("401", "Bad credentials", DOCS_REST));
    }
}

// ---------- GraphQL ----------

/// GHES clients post to `/api/graphql` (beside `/api/v3`), github.com clients to `/graphql`.
const GRAPHQL_PATHS: [&str; 2] = ["/api/graphql", "/graphql"];

fn gql(gw: &Gateway, path: &str, token: &str, query: &str, variables: Value) -> Value {
    let res = gw
        .req("POST", path)
        .header("Authorization", &format!("bearer {token}"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .expect(200);
    assert_eq!(res.header("content-type"), Some(JSON_UTF8));
    assert_eq!(res.header("x-ratelimit-resource"), Some("graphql"));
    let body = res.json();
    Contract::load("github.yaml").check("/graphql", "post", 200, &body);
    body
}

fn no_errors(body: &Value) -> &Value {
    assert!(body.get("errors").is_none(), "errors: {body}");
    &body["data"]
}

#[test]
fn graphql_viewer_on_both_paths() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for path in GRAPHQL_PATHS {
        for (token, login) in [(&seed.alice, "alice"), (&seed.root, "root")] {
            let rest = gw.req("GET", "/user").gh(token).send().expect(200).json();
            // What `gh auth status` sends.
            let body = gql(
                &gw,
                path,
                token,
                "query UserCurrent{viewer{login}}",
                json!(null),
            );
            assert_eq!(no_errors(&body)["viewer"], json!({"login": login}));
            let body = gql(&gw, path, token, "{ viewer { login id name } }", json!({}));
            let viewer = &no_errors(&body)["viewer"];
            assert_eq!(viewer["login"], login);
            assert_eq!(
                viewer["id"], rest["node_id"],
                "GraphQL id is REST's node_id"
            );
            assert_eq!(viewer["name"], Value::Null);
        }
        // Basic auth works here too, and GET is not GitHub's GraphQL.
        let res = gw
            .req("POST", path)
            .header("Authorization", &basic_auth("x", &seed.bob))
            .json(&json!({"query": "{viewer{login}}"}))
            .send()
            .expect(200);
        assert_eq!(res.json()["data"]["viewer"]["login"], "bob");
        gw.req("GET", path).gh(&seed.bob).send().expect(404);
    }
    // Not under the REST prefix: GHES serves GraphQL beside it.
    gw.req("POST", "/api/v3/graphql")
        .gh(&seed.bob)
        .json(&json!({"query": "{viewer{login}}"}))
        .send()
        .expect(404);
}

const KEYS_PAGE: &str = "query($owner: String!, $name: String!, $first: Int, $after: String, \
     $last: Int, $before: String) {
  repository(owner: $owner, name: $name) {
    id name nameWithOwner
    deployKeys(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      pageInfo { hasNextPage endCursor hasPreviousPage startCursor }
      nodes { id title key readOnly verified createdAt }
      edges { cursor node { id title } }
    }
  }
}";

/// One `deployKeys` page: the connection, after checking that edges and nodes agree.
fn keys_page(gw: &Gateway, path: &str, token: &str, vars: Value) -> Value {
    let mut vars = vars;
    vars["owner"] = json!("acme");
    vars["name"] = json!("widgets");
    let body = gql(gw, path, token, KEYS_PAGE, vars);
    let repo = no_errors(&body)["repository"].clone();
    assert_eq!(repo["nameWithOwner"], "acme/widgets");
    assert_eq!(repo["name"], "widgets");
    let conn = repo["deployKeys"].clone();
    let nodes = conn["nodes"].as_array().unwrap();
    let edges = conn["edges"].as_array().unwrap();
    assert_eq!(nodes.len(), edges.len());
    for (node, edge) in nodes.iter().zip(edges) {
        assert_eq!(edge["node"]["id"], node["id"]);
        assert_eq!(edge["node"]["title"], node["title"]);
    }
    if let (Some(first), Some(last)) = (edges.first(), edges.last()) {
        assert_eq!(conn["pageInfo"]["startCursor"], first["cursor"]);
        assert_eq!(conn["pageInfo"]["endCursor"], last["cursor"]);
    }
    conn
}

fn titles(conn: &Value) -> Vec<String> {
    conn["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn graphql_deploy_keys_walk_forward_and_back() {
    use base64::Engine;
    let gw = Gateway::start();
    let seed = gw.seed();
    let mut rest = Vec::new();
    for i in 0..5 {
        let body = gw
            .req("POST", &keys_path("", "acme/widgets"))
            .gh(&seed.alice)
            .json(
                &json!({"title": format!("k{i}"), "key": fresh_key("w"), "read_only": i % 2 == 0}),
            )
            .send()
            .expect(201)
            .json();
        rest.push(body);
    }
    // A key elsewhere must not show up, nor count.
    add(&gw, &seed.root, "", "other/secret", &fresh_key("s"), true);
    let all: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    for path in GRAPHQL_PATHS {
        // Forward: first 2, then after the end cursor, until there is no next page.
        let mut seen = Vec::new();
        let mut pages = Vec::new();
        let mut after = Value::Null;
        loop {
            let conn = keys_page(&gw, path, &seed.alice, json!({"first": 2, "after": after}));
            assert_eq!(conn["totalCount"], 5);
            assert_eq!(
                conn["pageInfo"]["hasPreviousPage"],
                !pages.is_empty(),
                "{path} page {}",
                pages.len() + 1
            );
            seen.extend(titles(&conn));
            pages.push(conn["nodes"].as_array().unwrap().len());
            if conn["pageInfo"]["hasNextPage"] == false {
                break;
            }
            after = conn["pageInfo"]["endCursor"].clone();
            assert!(pages.len() < 5, "the walk ends");
        }
        assert_eq!(pages, [2, 2, 1], "{path}");
        assert_eq!(seen, all, "oldest first, as REST lists them");

        // Backward: last 2, then before the start cursor, until there is no previous page.
        let mut back = Vec::new();
        let mut before = Value::Null;
        let mut count = 0;
        loop {
            let conn = keys_page(&gw, path, &seed.alice, json!({"last": 2, "before": before}));
            assert_eq!(conn["totalCount"], 5);
            let mut page = titles(&conn);
            page.extend(back);
            back = page;
            count += 1;
            if conn["pageInfo"]["hasPreviousPage"] == false {
                break;
            }
            assert_eq!(conn["nodes"].as_array().unwrap().len(), 2);
            before = conn["pageInfo"]["startCursor"].clone();
            assert!(count < 5, "the walk ends");
        }
        assert_eq!(count, 3);
        assert_eq!(back, all, "the same keys, walking back");

        // Every field agrees with REST, and ids are the same whichever way and whenever asked.
        let page = keys_page(&gw, path, &seed.alice, json!({"first": 100}));
        let again = keys_page(&gw, path, &seed.root, json!({"first": 100}));
        assert_eq!(
            page["nodes"], again["nodes"],
            "stable ids, same for every caller"
        );
        let tail = keys_page(&gw, path, &seed.alice, json!({"last": 1}));
        assert_eq!(tail["nodes"][0], page["nodes"][4]);
        assert_eq!(tail["pageInfo"]["hasNextPage"], false);
        let mut ids = std::collections::HashSet::new();
        for (node, rest) in page["nodes"].as_array().unwrap().iter().zip(&rest) {
            assert_eq!(node["title"], rest["title"]);
            assert_eq!(node["key"], rest["key"]);
            assert_eq!(node["readOnly"], rest["read_only"]);
            assert_eq!(node["createdAt"], rest["created_at"]);
            assert_eq!(node["verified"], true);
            let id = node["id"].as_str().unwrap();
            // GitHub's legacy global id form, as docs/github.md documents it.
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(id)
                .unwrap();
            assert_eq!(decoded, format!("009:DeployKey{}", rest["id"]).into_bytes());
            assert!(ids.insert(id.to_string()), "ids are distinct");
        }
    }
    // A deleted key leaves the others' ids as they were.
    let first = keys_page(&gw, "/graphql", &seed.alice, json!({"first": 5}));
    gw.req(
        "DELETE",
        &format!("/repos/acme/widgets/keys/{}", rest[0]["id"]),
    )
    .gh(&seed.alice)
    .send()
    .expect(204);
    let later = keys_page(&gw, "/graphql", &seed.alice, json!({"first": 5}));
    assert_eq!(later["totalCount"], 4);
    assert_eq!(
        later["nodes"].as_array().unwrap()[..],
        first["nodes"].as_array().unwrap()[1..]
    );
}

#[test]
fn graphql_repository_is_null_with_not_found_for_strangers() {
    let gw = Gateway::start();
    let seed = gw.seed();
    add(&gw, &seed.root, "", "other/secret", &fresh_key("s"), true);
    let query = "query($o: String!, $n: String!) {\n  repository(owner: $o, name: $n) {\n    \
                 nameWithOwner\n    deployKeys(first: 10) { totalCount }\n  }\n}";
    for path in GRAPHQL_PATHS {
        for (token, owner, name) in [
            (&seed.alice, "other", "secret"),
            (&seed.bob, "other", "secret"),
            (&seed.alice, "acme", "nothing"),
            (&seed.alice, "acme/tools", "cli"),
            (&seed.root, "acme", "tools/cli"),
        ] {
            let body = gql(&gw, path, token, query, json!({"o": owner, "n": name}));
            assert_eq!(body["data"], json!({"repository": null}), "{owner}/{name}");
            assert_eq!(
                body["errors"],
                json!([{
                    "type": "NOT_FOUND",
                    "path": ["repository"],
                    "locations": [{"line": 2, "column": 3}],
                    "message": format!("Could not resolve to a Repository with the name '{owner}/{name}'."),
                }]),
                "{owner}/{name}"
            );
        }
        // An admin sees everything, as in REST.
        let body = gql(
            &gw,
            path,
            &seed.root,
            query,
            json!({"o": "other", "n": "secret"}),
        );
        assert_eq!(
            no_errors(&body)["repository"]["deployKeys"]["totalCount"],
            1
        );
        // A reporter sees the repository but not its keys: the keys' error nulls the repository.
        let body = gql(
            &gw,
            path,
            &seed.bob,
            "{ repository(owner:\"acme\", name:\"widgets\") { nameWithOwner } }",
            json!({}),
        );
        assert_eq!(
            no_errors(&body)["repository"]["nameWithOwner"],
            "acme/widgets"
        );
        let body = gql(
            &gw,
            path,
            &seed.bob,
            query,
            json!({"o": "acme", "n": "widgets"}),
        );
        assert_eq!(body["data"], json!({"repository": null}));
        assert_eq!(body["errors"][0]["type"], "FORBIDDEN");
        assert_eq!(
            body["errors"][0]["path"],
            json!(["repository", "deployKeys"])
        );
        assert_eq!(
            body["errors"][0]["message"],
            "Must have admin rights to Repository."
        );
    }
}

#[test]
fn graphql_checks_the_token_before_anything() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    for path in GRAPHQL_PATHS {
        for body in [
            json!({"query": "{ viewer { login } }"}),
            json!({"query": "{ nonsense"}),
            json!("not an object"),
        ] {
            let res = gw.req("POST", path).json(&body).send().expect(401);
            assert_eq!(res.header("content-type"), Some(JSON_UTF8));
            assert_eq!(
                res.json(),
                basic("401", "Requires authentication", DOCS_REST)
            );
            contract.check("/graphql", "post", 401, &res.json());
            for header in ["bearer nope", "token nope", &basic_auth("alice", "nope")] {
                let res = gw
                    .req("POST", path)
                    .header("Authorization", header)
                    .json(&body)
                    .send()
                    .expect(401);
                assert_eq!(res.json(), basic("401", "Bad credentials", DOCS_REST));
            }
        }
        // A read-only token may read.
        let body = gql(&gw, path, &seed.carol, "{viewer{login}}", json!(null));
        assert_eq!(no_errors(&body)["viewer"]["login"], "carol");
    }
}

#[test]
fn graphql_errors_are_githubs_shape() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let contract = Contract::load("github.yaml");
    add(&gw, &seed.alice, "", "acme/widgets", &fresh_key("e"), true);
    let keys = |args: &str| {
        format!(
            "{{ repository(owner: \"acme\", name: \"widgets\") {{ deployKeys{args} {{ totalCount }} }} }}"
        )
    };
    for path in GRAPHQL_PATHS {
        // Queries that cannot run: errors only, no `data`.
        for query in [
            "{ viewer { login ",
            "{ viewer { nope } }",
            "query { repository { id } }",
            "",
        ] {
            let body = gql(&gw, path, &seed.alice, query, json!(null));
            assert!(body.get("data").is_none(), "{query}: {body}");
            let errors = body["errors"].as_array().unwrap();
            assert!(!errors.is_empty());
            assert!(
                errors
                    .iter()
                    .all(|e| e["message"].as_str().is_some_and(|m| !m.is_empty()))
            );
        }
        let body = gql(&gw, path, &seed.alice, "{ viewer { login ", json!(null));
        assert!(body["errors"][0]["locations"][0]["line"].as_u64().is_some());

        for (args, kind, message) in [
            (
                "",
                "MISSING_PAGINATION_BOUNDARIES",
                "You must provide a `first` or `last` value to properly paginate the `deployKeys` connection.".to_string(),
            ),
            (
                "(first: 101)",
                "EXCESSIVE_PAGINATION",
                "Requesting 101 records on the `deployKeys` connection exceeds the `first` limit of 100 records.".to_string(),
            ),
            (
                "(last: 500)",
                "EXCESSIVE_PAGINATION",
                "Requesting 500 records on the `deployKeys` connection exceeds the `last` limit of 100 records.".to_string(),
            ),
            (
                "(first: 0)",
                "INVALID_PAGINATION",
                "`first` on the `deployKeys` connection must be between 1 and 100.".to_string(),
            ),
            (
                "(last: -3)",
                "INVALID_PAGINATION",
                "`last` on the `deployKeys` connection must be between 1 and 100.".to_string(),
            ),
            (
                "(first: 1, after: \"bm9wZQ==\")",
                "INVALID_CURSOR_ARGUMENTS",
                "`bm9wZQ==` does not appear to be a valid cursor.".to_string(),
            ),
        ] {
            let body = gql(&gw, path, &seed.alice, &keys(args), json!(null));
            assert_eq!(body["data"], json!({"repository": null}), "{args}");
            let error = &body["errors"][0];
            assert_eq!(error["type"], kind, "{args}");
            assert_eq!(error["message"], message.as_str());
            assert_eq!(error["path"], json!(["repository", "deployKeys"]));
            assert_eq!(body["errors"].as_array().unwrap().len(), 1);
        }
        // Aliases cannot multiply database trips without bound.
        let many: String = (0..30)
            .map(|i| format!("r{i}: repository(owner: \"acme\", name: \"widgets\") {{ name }} "))
            .collect();
        let body = gql(
            &gw,
            path,
            &seed.alice,
            &format!("{{ {many} }}"),
            json!(null),
        );
        assert!(body.get("data").is_none(), "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("complex")
        );
        let few: String = (0..5)
            .map(|i| format!("r{i}: repository(owner: \"acme\", name: \"widgets\") {{ name }} "))
            .collect();
        let body = gql(&gw, path, &seed.alice, &format!("{{ {few} }}"), json!(null));
        assert_eq!(no_errors(&body)["r4"]["name"], "widgets");
        // Errors and data side by side: one field fails, the other answers.
        let body = gql(
            &gw,
            path,
            &seed.alice,
            "{ viewer { login } nope: repository(owner: \"x\", name: \"y\") { id } }",
            json!(null),
        );
        assert_eq!(
            body["data"],
            json!({"viewer": {"login": "alice"}, "nope": null})
        );
        assert_eq!(body["errors"][0]["path"], json!(["nope"]));

        // Bodies GitHub refuses before GraphQL sees them.
        let res = gw
            .req("POST", path)
            .gh(&seed.alice)
            .raw_body("application/json", b"{not json".to_vec())
            .send()
            .expect(400);
        let problem = basic(
            "400",
            "Problems parsing JSON",
            "https://docs.github.com/graphql",
        );
        assert_eq!(res.json(), problem);
        contract.check("/graphql", "post", 400, &res.json());
        for body in [json!({}), json!({"query": 5}), json!({"variables": {}})] {
            let res = gw
                .req("POST", path)
                .gh(&seed.alice)
                .json(&body)
                .send()
                .expect(200);
            assert_eq!(
                res.json(),
                json!({"errors": [{"message": "A query attribute must be specified and must be a string."}]})
            );
        }
        for body in [
            json!({"query": "{viewer{login}}", "variables": 5}),
            json!({"query": "{viewer{login}}", "operationName": 5}),
        ] {
            gw.req("POST", path)
                .gh(&seed.alice)
                .json(&body)
                .send()
                .expect(400);
        }
        // Variables as a JSON string (some clients) and a chosen operation.
        let res = gw
            .req("POST", path)
            .gh(&seed.alice)
            .json(&json!({
                "query": "query A { viewer { login } } query B($n: String!) { repository(owner: \"acme\", name: $n) { name } }",
                "variables": "{\"n\": \"widgets\"}",
                "operationName": "B",
            }))
            .send()
            .expect(200);
        assert_eq!(
            res.json(),
            json!({"data": {"repository": {"name": "widgets"}}})
        );
    }
}

#[test]
fn graphql_introspection_describes_deploy_keys() {
    let gw = Gateway::start();
    let seed = gw.seed();
    for path in GRAPHQL_PATHS {
        let body = gql(
            &gw,
            path,
            &seed.alice,
            "{ __schema { types { name } } }",
            json!(null),
        );
        let names: Vec<&str> = no_errors(&body)["__schema"]["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        for name in [
            "DeployKey",
            "DeployKeyConnection",
            "DeployKeyEdge",
            "PageInfo",
            "Repository",
            "User",
            "DateTime",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        let body = gql(
            &gw,
            path,
            &seed.alice,
            "{ __type(name: \"DeployKey\") { fields { name } } }",
            json!(null),
        );
        let mut fields: Vec<&str> = no_errors(&body)["__type"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            ["createdAt", "id", "key", "readOnly", "title", "verified"]
        );
    }
}
