//! The store conformance suite: every operation of the storage contract, with its conflict,
//! ordering and paging rules, run on SQLite and (with KEYGATE_TEST_POSTGRES_URL) on PostgreSQL.

mod common;

use std::sync::Arc;

use keygate::store::{Db, KeyRange, NewKey, Role, Scope, Store, StoreError, now_ms};

/// A fresh store per backend: SQLite always, PostgreSQL when the tests have a server.
fn backends() -> Vec<(&'static str, Store, Keep)> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("k.db")).unwrap();
    out.push(("sqlite", store, Keep::Dir(dir)));
    if std::env::var_os("KEYGATE_TEST_POSTGRES_URL").is_some() {
        let schema = common::PgSchema::create();
        let store = Store::open(std::path::Path::new(&schema.url)).unwrap();
        out.push(("postgres", store, Keep::Schema(schema)));
    } else {
        eprintln!("KEYGATE_TEST_POSTGRES_URL unset: conformance runs on SQLite only");
    }
    out
}

/// What must outlive the store: its directory or its schema.
#[allow(dead_code)]
enum Keep {
    Dir(tempfile::TempDir),
    Schema(common::PgSchema),
}

macro_rules! conformance {
    ($name:ident, |$store:ident| $body:block) => {
        #[test]
        fn $name() {
            for (backend, $store, keep) in backends() {
                eprintln!("{} on {backend}", stringify!($name));
                // The store (and its pool) goes before its directory or schema.
                {
                    let $store = $store;
                    $body
                }
                drop(keep);
            }
        }
    };
}

fn w<T>(store: &Store, f: impl FnMut(&Db) -> Result<T, StoreError>) -> T {
    store.write(f).expect("write")
}

fn r<T>(store: &Store, f: impl FnMut(&Db) -> Result<T, StoreError>) -> T {
    store.read(f).expect("read")
}

fn unique(err: StoreError) -> String {
    match err {
        StoreError::Unique(what) => what,
        other => panic!("expected a unique violation, got {other:?}"),
    }
}

fn key<'a>(sha: &'a str, md5: &'a str, public: bool, owner: Option<i64>) -> NewKey<'a> {
    NewKey {
        fingerprint_sha256: sha,
        fingerprint_md5: md5,
        key_text: "ssh-ed25519 AAAA",
        kind: "ssh-ed25519",
        bits: 256,
        title: "t",
        public,
        owner_id: owner,
        expires_at: None,
        created_at: now_ms(),
    }
}

/// A namespace and a repository in it; returns (namespace id, repository id).
fn repo(store: &Store, ns: &str, name: &str) -> (i64, i64) {
    w(store, |db| {
        let ns_id = match db.namespace_by_path(ns)? {
            Some(n) => n.id,
            None => db.insert_namespace(None, ns, ns, &format!("{:0>32}", ns.len()))?,
        };
        let id = db.insert_repo(None, ns_id, name, &format!("{ns}/{name}"))?;
        Ok((ns_id, id))
    })
}

conformance!(
    users_are_unique_by_name_in_any_case_and_paged_by_id,
    |store| {
        let a = w(&store, |db| db.insert_user("alice", true));
        let b = w(&store, |db| db.insert_user("bob", false));
        assert!(b > a);
        let err = store
            .write(|db| db.insert_user("ALICE", false))
            .unwrap_err();
        assert_eq!(unique(err), "users.username");
        let alice = r(&store, |db| db.user_by_name("Alice")).expect("any case");
        assert_eq!(
            (alice.id, alice.username.as_str(), alice.admin),
            (a, "alice", true)
        );
        assert_eq!(r(&store, |db| db.user_by_id(b)).unwrap().username, "bob");
        assert_eq!(r(&store, |db| db.user_by_id(999)), None);
        let c = w(&store, |db| db.insert_user("carol", false));
        let page = r(&store, |db| db.users_page(None, 1, 1));
        assert_eq!(page.iter().map(|u| u.id).collect::<Vec<_>>(), vec![b]);
        let all = r(&store, |db| db.users_page(None, 0, 100));
        assert_eq!(all.iter().map(|u| u.id).collect::<Vec<_>>(), vec![a, b, c]);
        let only = r(&store, |db| db.users_page(Some("CAROL"), 0, 10));
        assert_eq!(only.iter().map(|u| u.id).collect::<Vec<_>>(), vec![c]);
        assert_eq!(r(&store, |db| db.count_users(None)), 3);
        assert_eq!(r(&store, |db| db.count_users(Some("Bob"))), 1);
        assert_eq!(r(&store, |db| db.count_users(Some("nobody"))), 0);
        let listed = r(&store, |db| db.list_users());
        assert_eq!(
            listed.iter().map(|u| u.id).collect::<Vec<_>>(),
            vec![a, b, c]
        );
        assert!(w(&store, |db| db.delete_user(c)));
        assert!(!w(&store, |db| db.delete_user(c)));
        // Ids are never handed out twice, not even the newest deleted one.
        let d = w(&store, |db| db.insert_user("dave", false));
        assert!(d > c, "{d} after {c}");
    }
);

conformance!(
    tokens_are_found_by_hash_listed_by_id_and_go_with_their_user,
    |store| {
        let u = w(&store, |db| db.insert_user("alice", false));
        let t1 = w(&store, |db| {
            db.insert_token(u, &[1, 2, 3], Scope::Api, None)
        });
        let t2 = w(&store, |db| {
            db.insert_token(u, &[4], Scope::ReadApi, Some(77))
        });
        let (token, user) = r(&store, |db| db.token_by_hash(&[4])).unwrap();
        assert_eq!(
            (token.id, token.user_id, token.scope, token.expires_at),
            (t2, u, Scope::ReadApi, Some(77))
        );
        assert_eq!(user.username, "alice");
        assert_eq!(r(&store, |db| db.token_by_hash(&[9])), None);
        let listed = r(&store, |db| db.list_tokens(u));
        assert_eq!(
            listed.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![t1, t2]
        );
        assert_eq!(listed[0].scope, Scope::Api);
        let err = store
            .write(|db| db.insert_token(u, &[1, 2, 3], Scope::Api, None))
            .unwrap_err();
        assert_eq!(unique(err), "tokens.hash");
        assert!(w(&store, |db| db.delete_token(t1)));
        assert!(!w(&store, |db| db.delete_token(t1)));
        w(&store, |db| db.delete_user(u));
        assert_eq!(r(&store, |db| db.token_by_hash(&[4])), None, "cascade");
    }
);

conformance!(namespaces_and_repositories_by_path_in_any_case, |store| {
    let top = w(&store, |db| {
        db.insert_namespace(None, "Acme", "Acme", "0123456789abcdef0123456789abcdef")
    });
    let sub = w(&store, |db| {
        db.insert_namespace(
            Some(top),
            "tools",
            "Acme/tools",
            "fedcba9876543210fedcba9876543210",
        )
    });
    let other = w(&store, |db| {
        db.insert_namespace(None, "beta", "beta", "11111111111111111111111111111111")
    });
    let err = store
        .write(|db| db.insert_namespace(None, "acme", "ACME", "22222222222222222222222222222222"))
        .unwrap_err();
    assert_eq!(unique(err), "namespaces.full_path");
    let err = store
        .write(|db| db.insert_namespace(None, "x", "x", "11111111111111111111111111111111"))
        .unwrap_err();
    assert_eq!(unique(err), "namespaces.uuid");
    assert_eq!(
        r(&store, |db| db.namespace_by_path("acme/TOOLS"))
            .unwrap()
            .id,
        sub
    );
    let ns = r(&store, |db| db.namespace_by_id(sub)).unwrap();
    assert_eq!(
        (ns.parent_id, ns.name.as_str(), ns.full_path.as_str()),
        (Some(top), "tools", "Acme/tools")
    );
    assert_eq!(
        r(&store, |db| db
            .namespace_by_uuid("11111111111111111111111111111111"))
        .unwrap()
        .id,
        other
    );
    assert_eq!(r(&store, |db| db.namespace_by_uuid("nope")), None);
    // Ordered by path without regard to case.
    let order: Vec<_> = r(&store, |db| db.list_namespaces())
        .into_iter()
        .map(|n| n.full_path)
        .collect();
    assert_eq!(order, vec!["Acme", "Acme/tools", "beta"]);

    let r1 = w(&store, |db| {
        db.insert_repo(None, sub, "cli", "Acme/tools/cli")
    });
    let err = store
        .write(|db| db.insert_repo(None, sub, "CLI", "acme/tools/CLI"))
        .unwrap_err();
    assert_eq!(unique(err), "repositories.full_path");
    let repo = r(&store, |db| db.repo_by_path("ACME/tools/cli")).unwrap();
    assert_eq!(
        (repo.id, repo.name.as_str(), repo.namespace.id),
        (r1, "cli", sub)
    );
    assert_eq!(
        r(&store, |db| db.repo_by_id(r1)).unwrap().full_path,
        "Acme/tools/cli"
    );
    // A chosen id is kept, taken ids conflict, and later repositories count on from it.
    let chosen = w(&store, |db| db.insert_repo(Some(500), other, "r", "beta/r"));
    assert_eq!(chosen, 500);
    let err = store
        .write(|db| db.insert_repo(Some(500), other, "s", "beta/s"))
        .unwrap_err();
    assert_eq!(unique(err), "repositories.id");
    let next = w(&store, |db| db.insert_repo(None, other, "t", "beta/t"));
    assert!(next > 500, "{next}");
    let ids: Vec<_> = r(&store, |db| db.list_repos())
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![r1, 500, next]);
    assert!(w(&store, |db| db.delete_repo(500)));
    assert!(!w(&store, |db| db.delete_repo(500)));
    assert_eq!(r(&store, |db| db.repo_by_id(500)), None);
});

conformance!(roles_are_set_replaced_and_removed, |store| {
    let (_, repo_id) = repo(&store, "acme", "w");
    let u = w(&store, |db| db.insert_user("alice", false));
    assert_eq!(r(&store, |db| db.role_of(repo_id, u)), None);
    w(&store, |db| db.set_role(repo_id, u, Role::Reporter));
    assert_eq!(r(&store, |db| db.role_of(repo_id, u)), Some(Role::Reporter));
    w(&store, |db| db.set_role(repo_id, u, Role::Maintainer));
    assert_eq!(
        r(&store, |db| db.role_of(repo_id, u)),
        Some(Role::Maintainer)
    );
    assert!(w(&store, |db| db.delete_role(repo_id, u)));
    assert!(!w(&store, |db| db.delete_role(repo_id, u)));
});

conformance!(keys_links_conflicts_and_orphans, |store| {
    let (_, r1) = repo(&store, "acme", "one");
    let (_, r2) = repo(&store, "acme", "two");
    let u = w(&store, |db| db.insert_user("alice", false));
    let k1 = w(&store, |db| {
        db.insert_key(&key("SHA256:a", "md", false, Some(u)))
    });
    let k2 = w(&store, |db| {
        db.insert_key(&key("SHA256:b", "md", true, None))
    });
    let err = store
        .write(|db| db.insert_key(&key("SHA256:a", "x", false, None)))
        .unwrap_err();
    assert_eq!(unique(err), "deploy_keys.fingerprint_sha256");
    let got = r(&store, |db| db.key_by_id(k1)).unwrap();
    assert_eq!(
        (
            &*got.fingerprint_sha256,
            got.bits,
            got.public,
            got.owner_id,
            got.last_used_at
        ),
        ("SHA256:a", 256, false, Some(u), None)
    );
    assert_eq!(r(&store, |db| db.key_by_sha256("SHA256:b")).unwrap().id, k2);
    assert_eq!(
        r(&store, |db| db.key_by_md5("md")).unwrap().id,
        k1,
        "lowest id wins"
    );
    w(&store, |db| db.update_key_title(k1, "renamed"));
    assert_eq!(
        r(&store, |db| db.key_by_id(k1)).unwrap().title.as_ref(),
        "renamed"
    );

    w(&store, |db| {
        db.insert_link(r1, k1, false, Some(u), now_ms())
    });
    w(&store, |db| db.insert_link(r2, k1, true, None, now_ms()));
    w(&store, |db| db.insert_link(r1, k2, true, Some(u), now_ms()));
    let err = store
        .write(|db| db.insert_link(r1, k1, true, None, now_ms()))
        .unwrap_err();
    assert_eq!(unique(err), "key_links.repo_id, key_links.key_id");
    assert_eq!(r(&store, |db| db.link_count(k1)), 2);
    let linked = r(&store, |db| db.linked_key(r1, k1)).unwrap();
    assert_eq!(
        (linked.repo_id, linked.can_push, linked.added_by.as_deref()),
        (r1, false, Some("alice"))
    );
    assert_eq!(linked.updated_at, linked.linked_at);
    assert_eq!(
        r(&store, |db| db.linked_key(r2, k1)).unwrap().added_by,
        None
    );
    // updated_at moves only when can_push really changes.
    std::thread::sleep(std::time::Duration::from_millis(5));
    w(&store, |db| db.set_can_push(r1, k1, false));
    assert_eq!(
        r(&store, |db| db.linked_key(r1, k1)).unwrap().updated_at,
        linked.updated_at
    );
    w(&store, |db| db.set_can_push(r1, k1, true));
    let changed = r(&store, |db| db.linked_key(r1, k1)).unwrap();
    assert!(changed.can_push && changed.updated_at > linked.updated_at);

    // Pages of a repository's keys, in the order they were attached.
    let page = r(&store, |db| db.linked_keys(r1, 0, 10));
    assert_eq!(
        page.iter().map(|l| l.key.id).collect::<Vec<_>>(),
        vec![k1, k2]
    );
    let page = r(&store, |db| db.linked_keys(r1, 1, 1));
    assert_eq!(page.iter().map(|l| l.key.id).collect::<Vec<_>>(), vec![k2]);
    assert!(r(&store, |db| db.linked_keys(r1, 2, 10)).is_empty());
    assert_eq!(r(&store, |db| db.count_linked_keys(r1, u64::MAX)), 2);
    // A capped count stops at the cap.
    assert_eq!(r(&store, |db| db.count_linked_keys(r1, 1)), 1);
    assert_eq!(r(&store, |db| db.count_linked_keys(r1, 3)), 2);
    let links = r(&store, |db| db.links_of_key(k1));
    assert_eq!(
        links.iter().map(|l| l.repo.id).collect::<Vec<_>>(),
        vec![r1, r2]
    );
    assert!(links[0].id < links[1].id && links[1].can_push);

    let every = KeyRange::default();
    let ids = |range: KeyRange, offset: u64, limit: u32| -> Vec<i64> {
        r(&store, |db| db.list_keys(range, offset, limit))
            .iter()
            .map(|k| k.id)
            .collect()
    };
    assert_eq!(ids(every, 0, 10), vec![k1, k2]);
    assert_eq!(ids(every, 1, 10).len(), 1);
    let public = KeyRange {
        public_only: true,
        ..every
    };
    assert_eq!(ids(public, 0, 10), vec![k2]);
    // Keyset ranges: ids strictly between the bounds, either way round.
    let newest_first = KeyRange {
        descending: true,
        ..every
    };
    assert_eq!(ids(newest_first, 0, 10), vec![k2, k1]);
    assert_eq!(ids(newest_first, 0, 1), vec![k2]);
    let after_k1 = KeyRange {
        after: Some(k1),
        ..every
    };
    assert_eq!(ids(after_k1, 0, 10), vec![k2]);
    let before_k2 = KeyRange {
        before: Some(k2),
        ..newest_first
    };
    assert_eq!(ids(before_k2, 0, 10), vec![k1]);
    let public_before_k2 = KeyRange {
        public_only: true,
        ..before_k2
    };
    assert!(ids(public_before_k2, 0, 10).is_empty());
    assert_eq!(r(&store, |db| db.count_keys(false, u64::MAX)), 2);
    assert_eq!(r(&store, |db| db.count_keys(true, u64::MAX)), 1);
    assert_eq!(r(&store, |db| db.count_keys(false, 1)), 1);
    assert_eq!(r(&store, |db| db.count_keys(true, 0)), 0);

    // A key still linked, or public, is never removed as an orphan.
    assert!(!w(&store, |db| db.delete_key_if_orphaned(k1)));
    assert!(w(&store, |db| db.delete_link(r1, k1)));
    assert!(!w(&store, |db| db.delete_link(r1, k1)));
    assert!(w(&store, |db| db.delete_link(r2, k1)));
    assert!(w(&store, |db| db.delete_key_if_orphaned(k1)));
    assert_eq!(r(&store, |db| db.key_by_id(k1)), None);
    assert!(w(&store, |db| db.delete_link(r1, k2)));
    assert!(!w(&store, |db| db.delete_key_if_orphaned(k2)));

    // Deleting a repository takes the private keys only it held, not public ones.
    let k3 = w(&store, |db| {
        db.insert_key(&key("SHA256:c", "m3", false, None))
    });
    w(&store, |db| db.insert_link(r2, k3, false, None, now_ms()));
    w(&store, |db| db.insert_link(r2, k2, false, None, now_ms()));
    let door = |store: &Store| r(store, |db| db.linked_key_by_sha256("SHA256:b")).map(|k| k.id);
    assert_eq!(door(&store), Some(k2));
    assert!(w(&store, |db| db.delete_repo(r2)));
    assert_eq!(r(&store, |db| db.key_by_id(k3)), None);
    assert!(r(&store, |db| db.key_by_id(k2)).is_some());
    // The public key stays, but with its last repository gone the SSH door admits it no more.
    assert_eq!(door(&store), None);
});

conformance!(who_may_see_and_reuse_keys, |store| {
    let (_, r1) = repo(&store, "acme", "one");
    let (_, r2) = repo(&store, "acme", "two");
    let (_, r3) = repo(&store, "acme", "three");
    let alice = w(&store, |db| db.insert_user("alice", false));
    let bob = w(&store, |db| db.insert_user("bob", false));
    let carol = w(&store, |db| db.insert_user("carol", false));
    w(&store, |db| {
        db.set_role(r1, alice, Role::Maintainer)?;
        db.set_role(r2, alice, Role::Maintainer)?;
        db.set_role(r1, bob, Role::Maintainer)?;
        db.set_role(r2, bob, Role::Reporter)?;
        db.set_role(r3, carol, Role::Maintainer)
    });
    let owned = w(&store, |db| {
        db.insert_key(&key("SHA256:o", "1", false, Some(bob)))
    });
    let public = w(&store, |db| {
        db.insert_key(&key("SHA256:p", "2", true, None))
    });
    let on_r1 = w(&store, |db| {
        db.insert_key(&key("SHA256:r", "3", false, None))
    });
    let on_r3 = w(&store, |db| {
        db.insert_key(&key("SHA256:s", "4", false, None))
    });
    w(&store, |db| {
        db.insert_link(r1, on_r1, false, None, now_ms())?;
        db.insert_link(r2, on_r1, false, None, now_ms())?;
        db.insert_link(r3, on_r3, false, None, now_ms())
    });
    assert!(r(&store, |db| db.key_accessible(owned, bob)));
    assert!(!r(&store, |db| db.key_accessible(owned, alice)));
    assert!(r(&store, |db| db.key_accessible(public, carol)));
    assert!(r(&store, |db| db.key_accessible(on_r1, alice)));
    assert!(!r(&store, |db| db.key_accessible(on_r3, alice)));
    // Once per repository both maintain, in link order, with the total.
    let (keys, total) = r(&store, |db| db.keys_in_common_repos(alice, None, 0, 10));
    assert_eq!(
        (keys.iter().map(|k| k.id).collect::<Vec<_>>(), total),
        (vec![on_r1, on_r1], 2)
    );
    let (keys, total) = r(&store, |db| {
        db.keys_in_common_repos(alice, Some(bob), 0, 10)
    });
    assert_eq!((keys.len(), total), (1, 1), "bob only reports on r2");
    let (keys, total) = r(&store, |db| db.keys_in_common_repos(alice, None, 1, 1));
    assert_eq!((keys.len(), total), (1, 2));
    assert!(r(&store, |db| db.share_maintained_repo(alice, bob)));
    assert!(!r(&store, |db| db.share_maintained_repo(alice, carol)));
});

conformance!(namespace_wide_roles_and_keys_cover_the_subtree, |store| {
    let (top, w1) = repo(&store, "acme", "w");
    let sub = w(&store, |db| {
        db.insert_namespace(
            Some(top),
            "sub",
            "acme/sub",
            "33333333333333333333333333333333",
        )
    });
    let deep = w(&store, |db| db.insert_repo(None, sub, "d", "acme/sub/d"));
    let (elsewhere, e1) = repo(&store, "other", "e");
    let alice = w(&store, |db| db.insert_user("alice", false));
    let bob = w(&store, |db| db.insert_user("bob", false));
    w(&store, |db| {
        db.set_role(deep, alice, Role::Maintainer)?;
        db.set_role(w1, bob, Role::Reporter)
    });
    assert_eq!(r(&store, |db| db.namespace_roles(top, alice)), (true, true));
    assert_eq!(r(&store, |db| db.namespace_roles(top, bob)), (true, false));
    assert_eq!(
        r(&store, |db| db.namespace_roles(elsewhere, alice)),
        (false, false)
    );
    let mut ids = Vec::new();
    for (i, repo_id) in [deep, w1, deep, e1].into_iter().enumerate() {
        let sha = format!("SHA256:{i}");
        let id = w(&store, |db| db.insert_key(&key(&sha, "m", false, None)));
        w(&store, |db| {
            db.insert_link(repo_id, id, false, None, now_ms())
        });
        ids.push(id);
    }
    // The same key on two repositories of the subtree counts once.
    w(&store, |db| {
        db.insert_link(w1, ids[0], false, None, now_ms())
    });
    let (page, total) = r(&store, |db| db.namespace_key_ids(top, None, 0, 10));
    assert_eq!((page, total), (vec![ids[0], ids[1], ids[2]], 3));
    let (page, total) = r(&store, |db| db.namespace_key_ids(top, None, 1, 1));
    assert_eq!((page, total), (vec![ids[1]], 3));
    let (page, total) = r(&store, |db| db.namespace_key_ids(top, Some(alice), 0, 10));
    assert_eq!((page, total), (vec![ids[0], ids[2]], 2));
    assert!(r(&store, |db| db.namespace_has_key(top, None, ids[1])));
    assert!(!r(&store, |db| db.namespace_has_key(
        top,
        Some(alice),
        ids[1]
    )));
    assert!(!r(&store, |db| db.namespace_has_key(top, None, ids[3])));
    assert!(r(&store, |db| db.namespace_has_key(
        sub,
        Some(alice),
        ids[2]
    )));
});

conformance!(access_keys_submodules_and_link_labels, |store| {
    let (_, r1) = repo(&store, "acme", "one");
    let (_, r2) = repo(&store, "acme", "two");
    let (_, r3) = repo(&store, "acme", "three");
    let u = w(&store, |db| db.insert_user("alice", false));
    w(&store, |db| db.insert_access_key(u, "AK2", "s2"));
    w(&store, |db| db.insert_access_key(u, "AK1", "s1"));
    let err = store
        .write(|db| db.insert_access_key(u, "AK1", "x"))
        .unwrap_err();
    assert_eq!(unique(err), "access_keys.access_key");
    let (owner, secret) = r(&store, |db| db.access_key_owner("AK1")).unwrap();
    assert_eq!((owner.id, secret.as_str()), (u, "s1"));
    assert_eq!(
        r(&store, |db| db.access_keys_of(u)),
        vec!["AK2", "AK1"],
        "oldest first"
    );
    assert!(w(&store, |db| db.delete_access_key("AK2")));
    assert!(!w(&store, |db| db.delete_access_key("AK2")));
    assert_eq!(r(&store, |db| db.access_key_owner("AK2")), None);

    w(&store, |db| db.insert_submodule(r1, r3));
    w(&store, |db| db.insert_submodule(r1, r2));
    w(&store, |db| db.insert_submodule(r1, r2));
    assert_eq!(r(&store, |db| db.submodule_ids(r1)), vec![r2, r3]);
    assert!(w(&store, |db| db.delete_submodule(r1, r3)));
    assert!(!w(&store, |db| db.delete_submodule(r1, r3)));
    assert_eq!(r(&store, |db| db.submodule_ids(r1)), vec![r2]);

    let k = w(&store, |db| {
        db.insert_key(&key("SHA256:l", "m", false, None))
    });
    w(&store, |db| db.insert_link(r1, k, false, None, now_ms()));
    assert_eq!(r(&store, |db| db.link_application(r1, k)), None);
    w(&store, |db| db.set_link_application(r1, k, "ci"));
    w(&store, |db| db.set_link_application(r1, k, "release"));
    assert_eq!(
        r(&store, |db| db.link_application(r1, k)).as_deref(),
        Some("release")
    );
    w(&store, |db| db.delete_link(r1, k));
    w(&store, |db| db.insert_link(r1, k, false, None, now_ms()));
    assert_eq!(
        r(&store, |db| db.link_application(r1, k)),
        None,
        "the label went with its link"
    );
});

conformance!(
    signatures_are_claimed_once_and_forgotten_when_expired,
    |store| {
        let now = keygate::store::now_ms();
        assert!(w(&store, |db| db.claim_signature("sig", now + 60_000)));
        assert!(!w(&store, |db| db.claim_signature("sig", now + 60_000)));
        assert!(w(&store, |db| db.claim_signature("old", now - 1)));
        // Any claim forgets expired signatures; one that can no longer verify may be claimed again.
        assert!(w(&store, |db| db.claim_signature("other", now + 60_000)));
        assert!(w(&store, |db| db.claim_signature("old", now + 60_000)));
    }
);

conformance!(
    the_ssh_door_sees_only_linked_keys_and_records_use_coarsely,
    |store| {
        let (_, r1) = repo(&store, "acme", "one");
        let k = w(&store, |db| {
            db.insert_key(&key("SHA256:door", "m", false, None))
        });
        assert_eq!(r(&store, |db| db.linked_key_by_sha256("SHA256:door")), None);
        w(&store, |db| db.insert_link(r1, k, false, None, now_ms()));
        assert_eq!(
            r(&store, |db| db.linked_key_by_sha256("SHA256:door"))
                .unwrap()
                .id,
            k
        );
        assert!(w(&store, |db| db.touch_key_used(k, 1000, 0)));
        assert!(
            !w(&store, |db| db.touch_key_used(k, 1500, 900)),
            "fresh enough"
        );
        assert!(w(&store, |db| db.touch_key_used(k, 2500, 1000)));
        assert_eq!(
            r(&store, |db| db.key_by_id(k)).unwrap().last_used_at,
            Some(2500)
        );
    }
);

conformance!(
    login_keys_are_linked_keys_in_id_order_a_page_at_a_time,
    |store| {
        let (_, r1) = repo(&store, "acme", "one");
        let (_, r2) = repo(&store, "acme", "two");
        let ids: Vec<i64> = (0..5)
            .map(|i| {
                w(&store, |db| {
                    db.insert_key(&key(&format!("SHA256:login{i}"), "m", false, None))
                })
            })
            .collect();
        // Key 0 on both, 1 on r1, 2 on r2, 3 on r2, 4 on none.
        w(&store, |db| {
            db.insert_link(r2, ids[0], false, None, now_ms())?;
            db.insert_link(r1, ids[0], false, None, now_ms())?;
            db.insert_link(r2, ids[3], false, None, now_ms())?;
            db.insert_link(r1, ids[1], true, None, now_ms())?;
            db.insert_link(r2, ids[2], false, None, now_ms())
        });
        let page = |repo: Option<i64>, after: i64, limit: u32| -> Vec<i64> {
            r(&store, |db| db.login_keys(repo, after, limit))
                .iter()
                .map(|k| k.id)
                .collect()
        };
        assert_eq!(
            page(None, 0, 10),
            ids[..4],
            "once each, unlinked ones left out"
        );
        assert_eq!(page(None, 0, 2), ids[..2]);
        assert_eq!(page(None, ids[1], 2), ids[2..4]);
        assert_eq!(
            page(Some(r2), 0, 10),
            vec![ids[0], ids[2], ids[3]],
            "in id order"
        );
        assert_eq!(page(Some(r2), ids[0], 1), vec![ids[2]]);
        assert_eq!(page(Some(r1), ids[1], 10), Vec::<i64>::new());
    }
);

conformance!(
    transactions_are_all_or_nothing_and_savepoints_keep_what_came_before,
    |store| {
        let failed: Result<(), StoreError> = store.write(|db| {
            db.insert_user("ghost", false)?;
            db.insert_user("ghost", false)?;
            Ok(())
        });
        assert!(failed.is_err());
        assert_eq!(
            r(&store, |db| db.user_by_name("ghost")),
            None,
            "rolled back whole"
        );
        w(&store, |db| {
            db.insert_user("kept", false)?;
            let inner: Result<i64, StoreError> = db.savepoint(|db| {
                db.insert_user("undone", false)?;
                db.insert_user("kept", false)
            });
            assert!(matches!(inner, Err(StoreError::Unique(_))));
            db.insert_user("after", false)
        });
        let names: Vec<_> = r(&store, |db| db.list_users())
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, vec!["kept", "after"]);
    }
);

conformance!(
    check_then_insert_from_many_threads_makes_one_row_and_no_error,
    |store| {
        let store = Arc::new(store);
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    store.write(|db| match db.key_by_sha256("SHA256:race")? {
                        Some(k) => Ok(k.id),
                        None => db.insert_key(&key("SHA256:race", "m", false, None)),
                    })
                })
            })
            .collect();
        let ids: Vec<i64> = threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap()
                    .expect("serialized, retried, never a conflict")
            })
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert_eq!(r(&store, |db| db.count_keys(false, u64::MAX)), 1);
    }
);

/// SQLite's group commit: writers that arrive together share one transaction and one fsync,
/// every one is answered as if it had committed alone, and one writer's conflict undoes its own
/// changes only.
#[test]
fn concurrent_sqlite_writers_share_commits_and_a_conflict_stays_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("k.db")).unwrap();
    w(&store, |db| db.insert_user("taken", false));
    let before = store.batch_stats().expect("SQLite counts its batches");
    let (threads, each) = (16, 20);
    std::thread::scope(|s| {
        for t in 0..threads {
            let store = &store;
            s.spawn(move || {
                for i in 0..each {
                    let name = format!("u{t}-{i}");
                    let id = w(store, |db| {
                        let id = db.insert_user(&name, false)?;
                        // A real request runs several statements: hold the writer a moment, so
                        // that the other threads queue up behind it as they would under load.
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        Ok(id)
                    });
                    assert_eq!(
                        r(store, |db| db.user_by_id(id)).unwrap().username,
                        name,
                        "acknowledged means committed: a pooled reader sees it"
                    );
                    if i % 5 == 0 {
                        let err = store
                            .write(|db| {
                                db.insert_user(&format!("x{t}-{i}"), false)?;
                                db.insert_user("TAKEN", false)
                            })
                            .unwrap_err();
                        assert_eq!(unique(err), "users.username");
                    }
                }
            });
        }
    });
    let after = store.batch_stats().unwrap();
    let requests = after.requests - before.requests;
    assert_eq!(requests, threads * each + threads * each / 5, "{after:?}");
    let batches = after.batches - before.batches;
    assert!(
        batches < requests,
        "{batches} commits for {requests} writes: {after:?}"
    );
    assert_eq!(after.failed_batches, 0);
    let users = r(&store, |db| db.list_users());
    assert_eq!(users.len() as u64, 1 + threads * each);
    assert!(
        users.iter().all(|u| !u.username.starts_with('x')),
        "a refused write left a row"
    );
}

/// A panic in one write reaches its own caller only: the writes beside it commit, and the store
/// goes on writing.
#[test]
fn a_panicking_sqlite_write_loses_nobody_elses() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("k.db")).unwrap();
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    w(store, |db| {
                        let id = db.insert_user(&format!("u{t}"), false)?;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        if t == 3 {
                            panic!("a bug in one handler");
                        }
                        Ok(id)
                    })
                })
            })
            .collect();
        let panicked: Vec<bool> = writers.into_iter().map(|h| h.join().is_err()).collect();
        assert_eq!(
            panicked,
            [false, false, false, true, false, false, false, false]
        );
    });
    let mut names: Vec<String> = r(&store, |db| db.list_users())
        .into_iter()
        .map(|u| u.username)
        .collect();
    names.sort();
    assert_eq!(names, ["u0", "u1", "u2", "u4", "u5", "u6", "u7"]);
    w(&store, |db| db.insert_user("later", false));
}

#[test]
fn a_database_from_a_newer_keygate_is_refused_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    drop(Store::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::TooNew { found: 99, .. })
    ));
    if std::env::var_os("KEYGATE_TEST_POSTGRES_URL").is_none() {
        return;
    }
    let schema = common::PgSchema::create();
    drop(Store::open(std::path::Path::new(&schema.url)).unwrap());
    let mut client = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
    client
        .batch_execute("UPDATE keygate_schema SET version = 99")
        .unwrap();
    assert!(matches!(
        Store::open(std::path::Path::new(&schema.url)),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

conformance!(audit_events_filter_page_count_and_prune_alike, |store| {
    use keygate::store::{AuditEvent, AuditFilter};
    let (_, widgets) = repo(&store, "acme", "widgets");
    let (_, tools) = repo(&store, "acme", "tools");
    let (_, other) = repo(&store, "acmeother", "x");
    let alice = w(&store, |db| db.insert_user("alice", false));
    w(&store, |db| db.set_role(widgets, alice, Role::Maintainer));
    let event = |at: i64, repo: Option<(i64, &str)>, user: Option<i64>| AuditEvent {
        created_at: at,
        actor_kind: "cli".into(),
        actor_name: "op".into(),
        action: "deploy_key.create".into(),
        repo_id: repo.map(|r| r.0),
        repo_path: repo.map(|r| r.1.to_string()),
        fingerprint: Some("SHA256:x".into()),
        user_id: user,
        details: r#"{"after":{"can_push":true}}"#.into(),
        ..AuditEvent::default()
    };
    for e in [
        event(100, Some((widgets, "acme/widgets")), None),
        event(200, Some((tools, "ACME/tools")), None),
        event(300, Some((other, "acmeother/x")), None),
        event(400, None, Some(alice)),
    ] {
        w(&store, |db| db.insert_audit_event(e.clone()));
    }
    let in_order = r(&store, |db| {
        db.audit_events(
            &AuditFilter {
                oldest_first: true,
                ..Default::default()
            },
            0,
            100,
        )
    });
    assert_eq!(
        in_order.iter().map(|e| e.created_at).collect::<Vec<_>>(),
        [100, 200, 300, 400],
        "ids follow the order of the writes"
    );
    let ids: Vec<i64> = in_order.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|p| p[0] < p[1]));
    let stored = r(&store, |db| db.audit_event(ids[0])).unwrap();
    assert_eq!(stored.repo_path.as_deref(), Some("acme/widgets"));
    assert_eq!(stored.details, r#"{"after":{"can_push":true}}"#);
    let list = |f: AuditFilter| -> Vec<i64> {
        r(&store, |db| db.audit_events(&f, 0, 100))
            .iter()
            .map(|e| e.id)
            .collect()
    };
    let all = list(AuditFilter::default());
    assert_eq!(
        all,
        ids.iter().rev().copied().collect::<Vec<_>>(),
        "newest first"
    );
    let oldest = list(AuditFilter {
        oldest_first: true,
        ..Default::default()
    });
    assert_eq!(oldest, ids);
    let under = list(AuditFilter {
        under: Some("Acme".into()),
        ..Default::default()
    });
    assert_eq!(under, vec![ids[1], ids[0]], "acmeother is not under acme");
    let maintained = list(AuditFilter {
        under: Some("acme".into()),
        maintained_by: Some(alice),
        ..Default::default()
    });
    assert_eq!(maintained, vec![ids[0]]);
    let by_path = list(AuditFilter {
        repo_path: Some("acme/TOOLS".into()),
        ..Default::default()
    });
    assert_eq!(by_path, vec![ids[1]]);
    let dated = list(AuditFilter {
        since: Some(200),
        until: Some(300),
        ..Default::default()
    });
    assert_eq!(dated, vec![ids[2], ids[1]], "bounds inclusive");
    assert_eq!(
        list(AuditFilter {
            user_id: Some(alice),
            ..Default::default()
        }),
        vec![ids[3]]
    );
    assert_eq!(
        list(AuditFilter {
            repo_id: Some(widgets),
            ..Default::default()
        }),
        vec![ids[0]]
    );
    let page = r(&store, |db| db.audit_events(&AuditFilter::default(), 1, 2));
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    assert_eq!(
        r(&store, |db| db
            .count_audit_events(&AuditFilter::default(), 100)),
        4
    );
    assert_eq!(
        r(&store, |db| db
            .count_audit_events(&AuditFilter::default(), 2)),
        2
    );
    // A write that fails takes its audit row with it.
    let failed = store.write(|db| {
        db.insert_audit_event(event(500, None, None))?;
        db.insert_user("ALICE", false)
    });
    assert!(failed.is_err());
    assert_eq!(
        r(&store, |db| db
            .count_audit_events(&AuditFilter::default(), 100)),
        4
    );
    assert_eq!(w(&store, |db| db.prune_audit_events(250)), 2);
    assert_eq!(list(AuditFilter::default()), vec![ids[3], ids[2]]);
});

/// The value of an unlabelled counter in this process's `/-/metrics` text.
fn counter(name: &str) -> f64 {
    keygate::telemetry::handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Two PostgreSQL writers that both find no key and both insert it: SSI fails one at commit, the
/// store runs it again (it then finds the key), and `keygate_store_retries_total` counts that.
#[test]
fn a_lost_serialization_race_is_retried_and_counted() {
    if std::env::var_os("KEYGATE_TEST_POSTGRES_URL").is_none() {
        eprintln!(
            "skipped: KEYGATE_TEST_POSTGRES_URL unset (SQLite has one writer, nothing to retry)"
        );
        return;
    }
    let schema = common::PgSchema::create();
    let before = counter("keygate_store_retries_total");
    let store = Arc::new(Store::open(std::path::Path::new(&schema.url)).unwrap());
    let met = Arc::new(std::sync::Barrier::new(2));
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (store, met, runs) = (store.clone(), met.clone(), runs.clone());
            std::thread::spawn(move || {
                let mut first = true;
                store.write(|db| {
                    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let found = db.key_by_sha256("SHA256:both")?;
                    // Both look before either inserts, on their first run only.
                    if std::mem::take(&mut first) {
                        met.wait();
                    }
                    match found {
                        Some(k) => Ok(k.id),
                        None => db.insert_key(&key("SHA256:both", "m", false, None)),
                    }
                })
            })
        })
        .collect();
    let ids: Vec<i64> = threads
        .into_iter()
        .map(|t| t.join().unwrap().expect("retried, not refused"))
        .collect();
    assert_eq!(ids[0], ids[1], "the retry found the winner's key");
    let retries = runs.load(std::sync::atomic::Ordering::SeqCst) - 2;
    assert!(retries >= 1, "one writer must have lost");
    assert!(
        counter("keygate_store_retries_total") - before >= retries as f64,
        "every retry counted"
    );
    drop(store);
    drop(schema);
}

conformance!(
    many_rows_at_once_are_found_attached_and_refused_alike,
    |store| {
        let (_, repo_id) = repo(&store, "many", "r");
        w(&store, |db| {
            db.insert_keys(&[
                key("SHA256:m1", "1", false, None),
                key("SHA256:m2", "2", false, None),
            ])
        });
        let found = r(&store, |db| {
            db.keys_by_sha256_many(&["SHA256:m1", "SHA256:absent", "SHA256:m2"])
        });
        let mut fingerprints: Vec<&str> = found.iter().map(|k| &*k.fingerprint_sha256).collect();
        fingerprints.sort_unstable();
        assert_eq!(fingerprints, ["SHA256:m1", "SHA256:m2"]);
        let ids: Vec<i64> = found.iter().map(|k| k.id).collect();
        assert!(r(&store, |db| db.linked_key_ids(repo_id, &ids)).is_empty());
        w(&store, |db| db.insert_links(repo_id, &ids[..1], true, None));
        assert_eq!(r(&store, |db| db.linked_key_ids(repo_id, &ids)), [ids[0]]);

        // A row already there, or one given twice, fails the whole statement as a single INSERT
        // would, and the transaction leaves nothing behind.
        let err = store
            .write(|db| db.insert_links(repo_id, &ids, false, None))
            .unwrap_err();
        assert_eq!(unique(err), "key_links.repo_id, key_links.key_id");
        let err = store
            .write(|db| {
                db.insert_keys(&[
                    key("SHA256:m3", "3", false, None),
                    key("SHA256:m1", "1", false, None),
                ])
            })
            .unwrap_err();
        assert_eq!(unique(err), "deploy_keys.fingerprint_sha256");
        let err = store
            .write(|db| {
                db.insert_keys(&[
                    key("SHA256:m3", "3", false, None),
                    key("SHA256:m3", "3", false, None),
                ])
            })
            .unwrap_err();
        assert_eq!(unique(err), "deploy_keys.fingerprint_sha256");
        assert_eq!(r(&store, |db| db.linked_key_ids(repo_id, &ids)), [ids[0]]);
        assert!(r(&store, |db| db.key_by_sha256("SHA256:m3")).is_none());
    }
);

/// A PostgreSQL writer that looks rows up and finds none, then inserts them with one many-row
/// statement, while another writer inserts one of them without looking first (as an admin's
/// instance-wide key is made) and commits in between. The first must be retried and then find
/// the row, as an import chunk does: a unique violation would fail the import part-way.
fn a_many_row_insert_races_a_blind_writer(
    store: &Store,
    absent: impl Fn(&Db) -> Result<bool, StoreError> + Sync,
    insert: impl Fn(&Db) -> Result<(), StoreError> + Sync,
    blind: impl Fn(&Db) -> Result<(), StoreError>,
) {
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (looked, committed) = (Barrier::new(2), Barrier::new(2));
    let runs = AtomicUsize::new(0);
    let inserted: Result<bool, StoreError> = std::thread::scope(|scope| {
        let careful = scope.spawn(|| {
            store.write(|db| {
                let first = runs.fetch_add(1, Ordering::SeqCst) == 0;
                let none = absent(db)?;
                // The other writer's whole transaction, between this one's look and its insert.
                if first {
                    looked.wait();
                    committed.wait();
                }
                if none {
                    insert(db)?;
                }
                Ok(none)
            })
        });
        looked.wait();
        let blind_result = store.write(&blind);
        committed.wait();
        blind_result.expect("the blind writer commits");
        careful.join().unwrap()
    });
    assert!(
        !inserted.expect("retried, not refused"),
        "the retry found the row"
    );
    assert!(runs.into_inner() >= 2, "the first run lost");
}

#[test]
fn a_many_row_insert_that_loses_to_a_blind_writer_is_retried() {
    if std::env::var_os("KEYGATE_TEST_POSTGRES_URL").is_none() {
        eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL unset (SQLite has one writer)");
        return;
    }
    let schema = common::PgSchema::create();
    let store = Store::open(std::path::Path::new(&schema.url)).unwrap();
    let (_, repo_id) = repo(&store, "race", "r");

    // Keys: the lookup finds neither, the blind writer makes the second.
    let fingerprints = ["SHA256:race1", "SHA256:race2"];
    a_many_row_insert_races_a_blind_writer(
        &store,
        |db| Ok(db.keys_by_sha256_many(&fingerprints)?.is_empty()),
        |db| {
            db.insert_keys(&[
                key(fingerprints[0], "1", false, None),
                key(fingerprints[1], "2", false, None),
            ])
        },
        |db| {
            db.insert_key(&key(fingerprints[1], "2", true, None))
                .map(drop)
        },
    );

    // Links: the same race on (repository, key).
    let id = w(&store, |db| {
        db.insert_key(&key("SHA256:race3", "3", false, None))
    });
    a_many_row_insert_races_a_blind_writer(
        &store,
        |db| Ok(db.linked_key_ids(repo_id, &[id])?.is_empty()),
        |db| db.insert_links(repo_id, &[id], false, None),
        |db| db.insert_link(repo_id, id, true, None, now_ms()),
    );
    drop(store);
    drop(schema);
}
