//! Page-number pagination shared by the GitLab and GitHub dialects, and their `Link` headers.

use crate::core::Window;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    pub page: u64,
    pub per_page: u32,
}

impl Pagination {
    /// Missing or below-range values take the default; `per_page` above `max` is clamped, as both vendors do.
    pub fn new(page: Option<i64>, per_page: Option<i64>, default: u32, max: u32) -> Pagination {
        let per_page = match per_page {
            Some(n) if n >= 1 => n.min(i64::from(max)) as u32,
            _ => default,
        };
        // Pages past what an offset can express are simply empty.
        let page = page.filter(|p| *p >= 1).unwrap_or(1).min(1 << 40) as u64;
        Pagination { page, per_page }
    }

    pub fn window(&self) -> Window {
        Window {
            offset: (self.page - 1) * u64::from(self.per_page),
            limit: self.per_page,
        }
    }

    /// How far to count a list whose totals are shown only up to `shown`: past `shown` (so the
    /// totals can be left out) and past this page (so the next page is known to exist) but no
    /// further, so page 1 of a million rows counts `shown + 1` of them. A deeper page counts
    /// as far as its `OFFSET` walks anyway.
    pub fn count_to(&self, shown: u64) -> u64 {
        let window = self.window();
        (shown + 1).max(window.offset + u64::from(window.limit) + 1)
    }

    /// At least 1, even for an empty list.
    pub fn total_pages(&self, total: u64) -> u64 {
        total.div_ceil(u64::from(self.per_page)).max(1)
    }
}

/// One `<url>; rel="…"` entry per `(rel, page)`, joined with `, ` (the spacing PyGithub's parser needs).
/// Each URL carries the request's other parameters with `page` and `per_page`, sorted by name and
/// value, encoded as forms are (what `serde_urlencoded` wrote before: one string grows instead).
pub fn link_header(
    base: &str,
    path: &str,
    query: &[(String, String)],
    per_page: u32,
    rels: &[(&str, u64)],
) -> String {
    // Sorted once; `None` stands for the page number, which alone differs between the URLs.
    let per_page = per_page.to_string();
    let mut pairs: Vec<(&str, Option<&str>)> = query
        .iter()
        .filter(|(k, _)| k != "page" && k != "per_page")
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .chain([("page", None), ("per_page", Some(per_page.as_str()))])
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(rels.len() * (base.len() + path.len() + 48));
    for (i, (rel, page)) in rels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('<');
        out.push_str(base);
        out.push_str(path);
        out.push('?');
        let page = page.to_string();
        let start = out.len();
        let mut qs = form_urlencoded::Serializer::for_suffix(out, start);
        for (k, v) in &pairs {
            qs.append_pair(k, v.unwrap_or(&page));
        }
        out = qs.finish();
        out.push_str(">; rel=\"");
        out.push_str(rel);
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::link_header;

    /// What the header was built with before: each URL's pairs sorted and encoded by
    /// `serde_urlencoded`, the URLs formatted one by one.
    fn reference(
        base: &str,
        path: &str,
        query: &[(String, String)],
        per_page: u32,
        rels: &[(&str, u64)],
    ) -> String {
        rels.iter()
            .map(|(rel, page)| {
                let mut pairs: Vec<(&str, String)> = query
                    .iter()
                    .filter(|(k, _)| k != "page" && k != "per_page")
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect();
                pairs.push(("page", page.to_string()));
                pairs.push(("per_page", per_page.to_string()));
                pairs.sort();
                let qs = serde_urlencoded::to_string(&pairs).unwrap();
                format!("<{base}{path}?{qs}>; rel=\"{rel}\"")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn urls_keep_the_other_parameters_sorted_and_encoded() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let rels = [("first", 1), ("prev", 2), ("next", 4), ("last", 9)];
        for query in [
            pairs(&[]),
            pairs(&[("page", "3"), ("per_page", "5")]),
            pairs(&[
                ("search", "a b&c=d/é"),
                ("order_by", "id"),
                ("a", "2"),
                ("a", "1"),
                ("page", "3"),
            ]),
            pairs(&[("zz", ""), ("pagination", "offset"), ("per_page", "100")]),
        ] {
            let got = link_header(
                "https://gw.example",
                "/api/v4/projects/1/deploy_keys",
                &query,
                20,
                &rels,
            );
            assert_eq!(
                got,
                reference(
                    "https://gw.example",
                    "/api/v4/projects/1/deploy_keys",
                    &query,
                    20,
                    &rels
                )
            );
        }
        assert_eq!(
            link_header("http://h", "/p", &pairs(&[("q", "x y")]), 2, &[("next", 3)]),
            "<http://h/p?page=3&per_page=2&q=x+y>; rel=\"next\""
        );
        assert_eq!(link_header("http://h", "/p", &[], 2, &[]), "");
    }
}
