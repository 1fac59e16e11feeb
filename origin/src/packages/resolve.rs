//! Resolution: what installing a spec would install, exactly. pip decides (`install --dry-run
//! --ignore-installed --only-binary=:all: --report -`) with each wheel's core metadata (summary,
//! licence, links), PyPI's JSON simple API (PEP 691/700) the upload date, OSV the known
//! vulnerabilities.

use std::time::Duration;

use serde::Deserialize;

use super::{Config, Link, Resolved, Spec, normalise, osv};
use crate::error::{Error, Result};

/// pip may take this long to resolve (it downloads metadata of every candidate).
const PIP_TIMEOUT: Duration = Duration::from_secs(120);
/// Distributions in one resolution, at most.
const MAX_DISTRIBUTIONS: usize = 50;

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    install: Vec<ReportItem>,
}

#[derive(Deserialize)]
struct ReportItem {
    download_info: DownloadInfo,
    metadata: Metadata,
    #[serde(default)]
    requested: bool,
}

#[derive(Deserialize)]
struct DownloadInfo {
    url: String,
    #[serde(default)]
    archive_info: Option<ArchiveInfo>,
}

#[derive(Deserialize)]
struct ArchiveInfo {
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    hash: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    version: String,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    license_expression: Option<String>,
    #[serde(default)]
    project_url: Vec<String>,
    #[serde(default)]
    home_page: Option<String>,
}

/// Resolutions running at once, at most (each is a pip process for seconds): a client that
/// asks for many packages at once waits its turn for up to `RESOLVE_WAIT`, then gets a 503.
pub const MAX_RESOLVING: usize = 2;
const RESOLVE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
static RESOLVING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_RESOLVING);

/// Resolves `spec` against the index: exact versions, hashes, metadata, vulnerabilities.
pub async fn resolve(config: &Config, spec: &Spec) -> Result<Vec<Resolved>> {
    let busy = crate::error::Error::Busy {
        message: "other package resolutions are running; try again shortly",
        retry_after_secs: 5,
    };
    let _permit = match tokio::time::timeout(RESOLVE_WAIT, RESOLVING.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => return Err(busy),
    };
    let mut resolved = pip_report(config, spec).await?;
    let client = super::osv::http_client()?;
    for item in &mut resolved {
        // The release date is a courtesy: an index without the JSON simple API leaves it out.
        item.released = upload_time(&client, config, &item.name, &item.url)
            .await
            .ok()
            .flatten();
    }
    let versions: Vec<(String, String)> = resolved
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    let vulnerabilities = osv::query(&client, &config.osv_url, &versions).await?;
    for (item, found) in resolved.iter_mut().zip(vulnerabilities) {
        item.vulnerabilities = found;
    }
    Ok(resolved)
}

async fn pip_report(config: &Config, spec: &Spec) -> Result<Vec<Resolved>> {
    let mut command = tokio::process::Command::new(&config.python);
    command
        .args(["-m", "pip", "install", "--dry-run", "--ignore-installed"])
        .args(["--only-binary=:all:", "--quiet", "--report", "-"])
        .args(["--disable-pip-version-check", "--no-input", "--isolated"])
        .arg("--index-url")
        .arg(format!("{}/simple", config.pypi_url))
        .arg(spec.requirement())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(PIP_TIMEOUT, command.output())
        .await
        .map_err(|_| Error::Unavailable("pip took too long to resolve the package".into()))?
        .map_err(|err| Error::Unavailable(format!("pip could not run: {err}")))?;
    if !output.status.success() {
        return Err(Error::Validation(format!(
            "{} cannot be installed: {}",
            spec.requirement(),
            pip_reason(&output.stderr)
        )));
    }
    let report: Report = serde_json::from_slice(&output.stdout)
        .map_err(|err| Error::Internal(anyhow::anyhow!("pip's report is unreadable: {err}")))?;
    if report.install.len() > MAX_DISTRIBUTIONS {
        return Err(Error::Validation(format!(
            "{} would install {} distributions; at most {MAX_DISTRIBUTIONS} are allowed",
            spec.requirement(),
            report.install.len()
        )));
    }
    report
        .install
        .into_iter()
        .map(|item| {
            let sha256 = item
                .download_info
                .archive_info
                .as_ref()
                .and_then(|a| {
                    a.hashes.get("sha256").cloned().or_else(|| {
                        a.hash
                            .as_deref()
                            .and_then(|h| h.strip_prefix("sha256="))
                            .map(str::to_owned)
                    })
                })
                .ok_or_else(|| {
                    Error::Validation(format!(
                        "the index gives no sha256 for {}",
                        item.metadata.name
                    ))
                })?;
            Ok(Resolved {
                name: normalise(&item.metadata.name),
                version: item.metadata.version,
                url: item.download_info.url,
                sha256,
                requested: item.requested,
                summary: item.metadata.summary,
                links: links(
                    &item.metadata.project_url,
                    item.metadata.home_page.as_deref(),
                ),
                license: item
                    .metadata
                    .license_expression
                    .or(item.metadata.license)
                    .map(|l| cut(&l, 200)),
                released: None,
                vulnerabilities: Vec::new(),
            })
        })
        .collect()
}

/// pip's own explanation: its `ERROR:` lines, or the end of what it printed.
pub(super) fn pip_reason(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ERROR:"))
        .map(|l| l.trim_start_matches("ERROR:").trim())
        .collect();
    let reason = if errors.is_empty() {
        text.lines().rev().take(3).collect::<Vec<_>>().join(" ")
    } else {
        errors.join(" ")
    };
    cut(reason.trim(), 500)
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((index, _)) => format!("{}…", &text[..index]),
        None => text.to_owned(),
    }
}

#[derive(Deserialize)]
struct SimplePage {
    #[serde(default)]
    files: Vec<SimpleFile>,
}

#[derive(Deserialize)]
struct SimpleFile {
    filename: String,
    #[serde(default, rename = "upload-time")]
    upload_time: Option<String>,
}

/// When the chosen wheel was uploaded: PyPI's simple API in JSON (PEP 691, `upload-time` of
/// PEP 700), the same index pip reads.
async fn upload_time(
    client: &reqwest::Client,
    config: &Config,
    name: &str,
    wheel_url: &str,
) -> Result<Option<String>> {
    let url = format!("{}/simple/{name}/", config.pypi_url);
    let unavailable = |err: reqwest::Error| Error::Unavailable(format!("PyPI: {err}"));
    let response = client
        .get(&url)
        .header("accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .map_err(unavailable)?;
    let bytes = response
        .error_for_status()
        .map_err(unavailable)?
        .bytes()
        .await
        .map_err(unavailable)?;
    let page: SimplePage = serde_json::from_slice(&bytes)
        .map_err(|err| Error::Unavailable(format!("PyPI's answer is unreadable: {err}")))?;
    let filename = wheel_url
        .split(['#', '?'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or("");
    Ok(page
        .files
        .into_iter()
        .find(|f| f.filename == filename)
        .and_then(|f| f.upload_time))
}

/// `Project-URL` entries (`Label, https://…`) and `Home-page`, http(s) only.
fn links(project_urls: &[String], home_page: Option<&str>) -> Vec<Link> {
    let mut links: Vec<Link> = project_urls
        .iter()
        .filter_map(|entry| entry.split_once(','))
        .map(|(label, url)| Link {
            label: cut(label.trim(), 60),
            url: url.trim().to_owned(),
        })
        .collect();
    if let Some(home) = home_page {
        links.push(Link {
            label: "Homepage".into(),
            url: home.trim().to_owned(),
        });
    }
    links.retain(|l| l.url.starts_with("https://") || l.url.starts_with("http://"));
    links.truncate(10);
    links
}
