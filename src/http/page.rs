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
pub fn link_header(
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
            let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
            format!("<{base}{path}?{qs}>; rel=\"{rel}\"")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
