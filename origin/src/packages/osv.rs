//! OSV (https://google.github.io/osv.dev/api/): `POST /v1/querybatch` names the vulnerabilities
//! of each exact version (ids only), `GET /v1/vulns/<id>` describes one (summary, severity).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Vulnerability details fetched per resolution, at most (the ids are all kept).
const MAX_DETAILS: usize = 100;

/// One known vulnerability of a version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Vulnerability {
    pub id: String,
    pub summary: Option<String>,
    /// The advisory's own rating (`HIGH`, `MODERATE`…) or else its CVSS vector.
    pub severity: Option<String>,
}

pub(crate) fn http_client() -> Result<reqwest::Client> {
    // reqwest is built without a TLS provider of its own; ring is the workspace's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|err| Error::Internal(anyhow::anyhow!("http client: {err}")))
}

#[derive(Serialize)]
struct BatchQuery<'a> {
    queries: Vec<Query<'a>>,
}

#[derive(Serialize)]
struct Query<'a> {
    package: QueryPackage<'a>,
    version: &'a str,
}

#[derive(Serialize)]
struct QueryPackage<'a> {
    name: &'a str,
    ecosystem: &'static str,
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    #[serde(default)]
    vulns: Vec<VulnId>,
}

#[derive(Deserialize)]
struct VulnId {
    id: String,
}

#[derive(Deserialize)]
struct VulnDetail {
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    severity: Vec<SeverityEntry>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct SeverityEntry {
    #[serde(default)]
    score: String,
}

/// The vulnerabilities of each `(name, version)`, in the same order.
pub async fn query(
    client: &reqwest::Client,
    base: &str,
    versions: &[(String, String)],
) -> Result<Vec<Vec<Vulnerability>>> {
    if versions.is_empty() {
        return Ok(Vec::new());
    }
    let body = BatchQuery {
        queries: versions
            .iter()
            .map(|(name, version)| Query {
                package: QueryPackage {
                    name,
                    ecosystem: "PyPI",
                },
                version,
            })
            .collect(),
    };
    let answer: BatchAnswer = post_json(client, &format!("{base}/v1/querybatch"), &body).await?;
    if answer.results.len() != versions.len() {
        return Err(Error::Unavailable(
            "OSV answered for a different number of packages than asked".into(),
        ));
    }
    let mut details: BTreeMap<String, Vulnerability> = BTreeMap::new();
    let mut out = Vec::with_capacity(versions.len());
    for result in answer.results {
        let mut found = Vec::new();
        for vuln in result.vulns {
            if !details.contains_key(&vuln.id) && details.len() < MAX_DETAILS {
                let detail = describe(client, base, &vuln.id).await;
                details.insert(vuln.id.clone(), detail);
            }
            found.push(details.get(&vuln.id).cloned().unwrap_or(Vulnerability {
                id: vuln.id,
                summary: None,
                severity: None,
            }));
        }
        out.push(found);
    }
    Ok(out)
}

/// One vulnerability's summary and severity; just its id when OSV does not answer.
async fn describe(client: &reqwest::Client, base: &str, id: &str) -> Vulnerability {
    let url = format!("{base}/v1/vulns/{}", urlencoding(id));
    let detail = async {
        let response = client
            .get(&url)
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?;
        serde_json::from_slice::<VulnDetail>(&response.bytes().await.ok()?).ok()
    }
    .await;
    let Some(detail) = detail else {
        return Vulnerability {
            id: id.to_owned(),
            summary: None,
            severity: None,
        };
    };
    let rated = detail
        .database_specific
        .as_ref()
        .and_then(|d| d.get("severity"))
        .and_then(|s| s.as_str())
        .map(str::to_owned);
    Vulnerability {
        id: id.to_owned(),
        summary: detail.summary,
        severity: rated.or_else(|| detail.severity.into_iter().map(|s| s.score).next()),
    }
}

fn urlencoding(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        .collect()
}

async fn post_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    body: &impl Serialize,
) -> Result<T> {
    let unavailable = |err: reqwest::Error| Error::Unavailable(format!("OSV: {err}"));
    let body = serde_json::to_vec(body)
        .map_err(|err| Error::Internal(anyhow::anyhow!("OSV query: {err}")))?;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(unavailable)?
        .error_for_status()
        .map_err(unavailable)?;
    let bytes = response.bytes().await.map_err(unavailable)?;
    serde_json::from_slice(&bytes)
        .map_err(|err| Error::Unavailable(format!("OSV's answer is unreadable: {err}")))
}
