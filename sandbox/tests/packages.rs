//! Installed PyPI packages in the sandbox: real wheels from the real index (pip), imported by
//! real workers under seccomp and Landlock. `six` is pure Python; PyYAML brings its C extension
//! (`yaml._yaml`, libyaml linked in). Also the package part of the escape corpus: attempts that
//! go through a package's attributes, and through a package's own code, judged by impact.
//!
//! Needs network access to PyPI (pip) while it runs.

use std::io::ErrorKind as IoErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use contract::sandbox::{ErrorKind, ExecuteRequest, ExecuteResponse, Limits, PackageGrant};
use sandbox::supervisor::{Config, Supervisor};

const CANARY_VAR: &str = "MCPBOX_PACKAGE_CANARY";
const CANARY: &str = "canary-3c1d77ab-env";
const FILE_SECRET: &str = "canary-package-file-90ce";

struct Harness {
    supervisor: Supervisor,
    _dir: tempfile::TempDir,
    six: PackageGrant,
    yaml: PackageGrant,
    marker: PathBuf,
    secret_file: PathBuf,
    listener: TcpListener,
    port: u16,
}

/// `pip install --no-deps --only-binary=:all: --target <root>/<dir> <spec>`, as the origin does.
fn pip_install(root: &Path, dir: &str, spec: &str) -> PathBuf {
    let target = root.join(dir);
    // The interpreter itself (PYO3_PYTHON, as the test command exports it), not pyenv's shim,
    // which can fail when several tests run pip through it at once.
    let python = std::env::var_os("PYO3_PYTHON").unwrap_or_else(|| "python3".into());
    let status = Command::new(python)
        .args(["-m", "pip", "install", "--quiet", "--no-deps"])
        .args([
            "--only-binary=:all:",
            "--no-compile",
            "--disable-pip-version-check",
        ])
        .arg("--target")
        .arg(&target)
        .arg(spec)
        .status()
        .expect("pip runs");
    assert!(status.success(), "pip install {spec}");
    target
}

/// Every directory readable (and traversable) by the sandbox's unprivileged user.
fn open_up(path: &Path) {
    for entry in walk(path) {
        let mode = if entry.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn walk(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            out.extend(walk(&entry.unwrap().path()));
        }
    }
    out
}

impl Harness {
    async fn new() -> Harness {
        // SAFETY: set before the supervisor (and so before any thread of ours reads env).
        unsafe { std::env::set_var(CANARY_VAR, CANARY) };
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("packages");
        std::fs::create_dir(&root).unwrap();
        let six = pip_install(&root, "six-1.17.0", "six==1.17.0");
        let yaml = pip_install(&root, "pyyaml-6.0.3", "pyyaml==6.0.3");
        open_up(dir.path());
        let marker = dir.path().join("marker");
        let secret_file = dir.path().join("host-secret.txt");
        std::fs::write(&secret_file, FILE_SECRET).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let supervisor = Supervisor::start(Config {
            pool_size: 2,
            program: PathBuf::from(env!("CARGO_BIN_EXE_mcpbox-sandbox")),
            unguarded_python: false,
            packages_dir: Some(root),
        })
        .await
        .expect("supervisor starts");
        let grant = |path: PathBuf, module: &str| PackageGrant {
            path: path.to_string_lossy().into_owned(),
            modules: vec![module.to_owned()],
        };
        Harness {
            supervisor,
            _dir: dir,
            six: grant(six, "six"),
            yaml: grant(yaml, "yaml"),
            marker,
            secret_file,
            listener,
            port,
        }
    }

    async fn run(&self, code: &str, packages: Vec<PackageGrant>) -> ExecuteResponse {
        let code = code
            .replace("{MARKER}", &self.marker.display().to_string())
            .replace("{SECRET_FILE}", &self.secret_file.display().to_string())
            .replace("{PORT}", &self.port.to_string())
            .replace("{CANARY_VAR}", CANARY_VAR);
        self.supervisor
            .execute(ExecuteRequest {
                input: None,
                code,
                arguments: "{}".into(),
                allowed_modules: None,
                allowed_hosts: Vec::new(),
                secrets: Default::default(),
                packages,
                limits: Limits {
                    timeout_ms: 10_000,
                    ..Limits::default()
                },
            })
            .await
    }

    fn both(&self) -> Vec<PackageGrant> {
        vec![self.six.clone(), self.yaml.clone()]
    }

    /// What an attack achieved, if anything.
    fn impact(&self, response: &ExecuteResponse) -> Vec<String> {
        let mut found = Vec::new();
        if self.marker.exists() {
            found.push("the marker file was created".to_owned());
        }
        let seen = format!(
            "{:?} {:?} {}",
            response.result, response.error, response.stdout
        );
        if seen.contains(CANARY) {
            found.push("the host environment leaked".to_owned());
        }
        if seen.contains(FILE_SECRET) {
            found.push("the host file was read".to_owned());
        }
        match self.listener.accept() {
            Err(err) if err.kind() == IoErrorKind::WouldBlock => {}
            Ok(_) => found.push("a connection reached the test listener".to_owned()),
            Err(err) => found.push(format!("listener error: {err}")),
        }
        found
    }
}

#[tokio::test]
async fn pure_python_and_c_extension_packages_import_under_every_layer() {
    let harness = Harness::new().await;
    let code = r#"
import six
import yaml

def main():
    data = yaml.load("a: [1, 2]\nb: text", Loader=yaml.CSafeLoader)
    return {"yaml": data, "safe": yaml.safe_load("x: 1"), "six": six.ensure_str(b"ok"),
            "dumped": yaml.safe_dump({"k": "v"})}
"#;
    let response = harness.run(code, harness.both()).await;
    assert!(response.ok, "{response:?}");
    let result: serde_json::Value =
        serde_json::from_str(response.result.as_deref().unwrap()).unwrap();
    assert_eq!(
        result["yaml"],
        serde_json::json!({"a": [1, 2], "b": "text"})
    );
    assert_eq!(result["safe"], serde_json::json!({"x": 1}));
    assert_eq!(result["six"], "ok");
    assert_eq!(result["dumped"], "k: v\n");
    let health = harness.supervisor.health();
    let missing = health.layers.missing();
    assert!(
        !missing.contains(&"landlock") && !missing.contains(&"seccomp"),
        "the C extension must load with Landlock and seccomp on: {missing:?}"
    );
    harness.supervisor.shutdown();
}

#[tokio::test]
async fn only_granted_packages_are_importable() {
    let harness = Harness::new().await;
    let import_yaml = "import yaml\n\ndef main():\n    return yaml.safe_load('a: 1')\n";
    // No grant (another server, or a revoked request): not importable.
    let response = harness.run(import_yaml, Vec::new()).await;
    assert!(!response.ok);
    assert_eq!(response.error.unwrap().kind, ErrorKind::Validation);
    // A grant of `six` does not make its neighbour `yaml` importable.
    let response = harness.run(import_yaml, vec![harness.six.clone()]).await;
    assert!(!response.ok, "{response:?}");
    // Granting the name without the directory finds nothing to import.
    let mut name_only = harness.six.clone();
    name_only.modules = vec!["yaml".into()];
    let response = harness.run(import_yaml, vec![name_only]).await;
    assert!(!response.ok, "{response:?}");
    // A grant outside the packages directory, or of a never-importable or private name.
    for (path, module) in [
        ("/usr/lib", "yaml"),
        (harness.yaml.path.as_str(), "os"),
        (harness.yaml.path.as_str(), "_yaml"),
    ] {
        let grant = PackageGrant {
            path: path.to_owned(),
            modules: vec![module.to_owned()],
        };
        let response = harness.run(import_yaml, vec![grant]).await;
        assert!(!response.ok, "{path} {module}: {response:?}");
        assert_eq!(
            response.error.unwrap().kind,
            ErrorKind::Import,
            "{path} {module}"
        );
    }
    let response = harness.run(import_yaml, vec![harness.yaml.clone()]).await;
    assert!(response.ok, "{response:?}");
    harness.supervisor.shutdown();
}

/// Escape corpus, packages: each attempt must fail or achieve nothing.
#[tokio::test]
async fn package_attributes_and_package_code_do_not_open_the_sandbox() {
    let harness = Harness::new().await;
    // Reaching a never-importable module, the real `exec`, or interpreter internals through a
    // package's attributes: each must be refused (the attribute is not there).
    let refused = [
        (
            "six.exec_ is the real exec",
            "import six\ndef main():\n    six.exec_('x = ().__class__')\n",
        ),
        (
            "six.get_function_globals",
            "import six\ndef main():\n    return list(six.get_function_globals(six.wraps))\n",
        ),
        (
            "six.get_function_code",
            "import six\ndef main():\n    return str(six.get_function_code(main))\n",
        ),
        (
            "six.moves",
            "import six\ndef main():\n    return str(six.moves.builtins)\n",
        ),
        (
            "from six import moves",
            "from six import moves\ndef main():\n    return str(moves)\n",
        ),
        (
            "import six.moves",
            "import six.moves\ndef main():\n    return 1\n",
        ),
        (
            "six.print_ (real print)",
            "import six\ndef main():\n    six.print_('x')\n",
        ),
        (
            "six.BytesIO (io)",
            "import six\ndef main():\n    return str(six.BytesIO)\n",
        ),
        (
            "six.class_types holds type",
            "import six\ndef main():\n    return str(six.class_types[0]('X', (), {}))\n",
        ),
        (
            "six.create_bound_method",
            "import six\ndef main():\n    return str(six.create_bound_method(main, 1))\n",
        ),
        (
            "yaml submodule by attribute",
            "import yaml\ndef main():\n    return str(yaml.constructor)\n",
        ),
        (
            "yaml reader module",
            "import yaml\ndef main():\n    return str(yaml.reader)\n",
        ),
        (
            "import yaml.constructor",
            "import yaml.constructor\ndef main():\n    return 1\n",
        ),
        ("import _yaml", "import _yaml\ndef main():\n    return 1\n"),
        (
            "from yaml import unsafe_load",
            "from yaml import unsafe_load\ndef main():\n    return 1\n",
        ),
        (
            "yaml.UnsafeLoader",
            "import yaml\ndef main():\n    return str(yaml.UnsafeLoader)\n",
        ),
        (
            "yaml.full_load",
            "import yaml\ndef main():\n    return yaml.full_load('a: 1')\n",
        ),
    ];
    let mut failures = Vec::new();
    for (name, code) in refused {
        let response = harness.run(code, harness.both()).await;
        if response.ok {
            failures.push(format!("{name}: ran: {:?}", response.result));
        }
        let impact = harness.impact(&response);
        if !impact.is_empty() {
            failures.push(format!("{name}: {impact:?}"));
        }
    }
    // A package's own code can still reach `os` (PyYAML's unsafe loader is reachable through
    // `YAMLObject.yaml_loader`): there the OS layers must hold. Judged by impact only.
    let unsafe_loader = "yaml.YAMLObject.yaml_loader[-1]";
    let through_package = [
        (
            "os.system through yaml",
            "!!python/object/apply:os.system ['touch {MARKER}']",
        ),
        (
            "subprocess through yaml",
            "!!python/object/apply:subprocess.run [['touch', '{MARKER}']]",
        ),
        (
            "open for writing through yaml",
            "!!python/object/apply:builtins.open ['{MARKER}', 'w']",
        ),
        (
            "os.open through yaml",
            "!!python/object/apply:os.open ['{MARKER}', 65]",
        ),
        (
            "read a host file through yaml",
            "!!python/object/apply:builtins.open ['{SECRET_FILE}']",
        ),
        (
            "host environment through yaml",
            "!!python/object/apply:os.getenv ['{CANARY_VAR}']",
        ),
        (
            "socket through yaml",
            "!!python/object/apply:socket.create_connection [['127.0.0.1', {PORT}]]",
        ),
    ];
    for (name, document) in through_package {
        let code = format!(
            "import yaml\ndef main():\n    value = yaml.load({document:?}, Loader={unsafe_loader})\n    \
             try:\n        return value.read()\n    except Exception:\n        return str(value)\n"
        );
        let response = harness.run(&code, harness.both()).await;
        let impact = harness.impact(&response);
        if !impact.is_empty() {
            failures.push(format!("{name}: {impact:?} ({response:?})"));
        }
    }
    // The detectors can fail: the marker check sees a file that exists.
    std::fs::write(&harness.marker, "x").unwrap();
    let response = harness.run("def main():\n    return 1\n", Vec::new()).await;
    assert_eq!(harness.impact(&response), ["the marker file was created"]);
    harness.supervisor.shutdown();
    assert!(
        failures.is_empty(),
        "package escapes:\n{}",
        failures.join("\n")
    );
}
