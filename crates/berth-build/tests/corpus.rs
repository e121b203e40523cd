//! Corpus snapshot tests: every `tests/corpus/*.Dockerfile` parses and plans to the JSON
//! stored next to it (`.parse.json`, `.plan.json`). Set `BERTH_UPDATE_SNAPSHOTS=1` to
//! rewrite the snapshots after reviewing a change. The seed-notes Dockerfiles are also
//! checked instruction by instruction below.

use std::path::{Path, PathBuf};

use berth_build::{BuildOptions, BuildPlan, ImageConfig, Platform, parse};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn dockerfiles() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read corpus dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    v.sort();
    v
}

fn options() -> BuildOptions {
    // a fixed platform keeps the snapshots machine-independent
    BuildOptions {
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        ..Default::default()
    }
}

fn check(path: &Path, ext: &str, value: &serde_json::Value) {
    let snap = path.with_extension(ext);
    let text = serde_json::to_string_pretty(value).expect("serialise") + "\n";
    if std::env::var_os("BERTH_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snap, &text).expect("write snapshot");
        return;
    }
    let want = std::fs::read_to_string(&snap).unwrap_or_else(|e| {
        panic!(
            "missing snapshot {}: {e} (run with BERTH_UPDATE_SNAPSHOTS=1)",
            snap.display()
        )
    });
    if text != want {
        let line = text
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "snapshot {} differs at line {}:\n  got:  {}\n  want: {}\n(review, then BERTH_UPDATE_SNAPSHOTS=1)",
            snap.display(),
            line + 1,
            text.lines().nth(line).unwrap_or("<end>"),
            want.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

#[test]
fn corpus_snapshots() {
    let files = dockerfiles();
    assert!(files.len() >= 16, "corpus has {} files", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read dockerfile");
        let df = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check(
            &path,
            "parse.json",
            &serde_json::to_value(&df).expect("json"),
        );
        if std::env::consts::ARCH != "x86_64" && text.contains("BUILDPLATFORM") {
            continue;
        }
        let plan =
            BuildPlan::new(&df, options()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut base = |_: &str| Ok::<_, String>(ImageConfig::default());
        let stages = plan
            .plan_all(&mut base)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let value = serde_json::json!({
            "stages": plan.stages.iter().map(|s| serde_json::json!({
                "index": s.index, "name": s.name, "base": s.base, "deps": s.deps, "images": s.images,
            })).collect::<Vec<_>>(),
            "target": plan.target,
            "needed": plan.needed,
            "levels": plan.levels,
            "plans": stages.iter().map(|p| serde_json::json!({
                "index": p.index,
                "config": p.config,
                "steps": p.steps.iter().map(|s| serde_json::json!({
                    "line": s.line, "op": s.op, "history": s.history, "used_args": s.used_args,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        check(&path, "plan.json", &value);
    }
}

fn names(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(corpus_dir().join(file)).expect("read");
    parse(&text)
        .expect("parse")
        .instructions
        .iter()
        .map(|i| i.original.clone())
        .collect()
}

#[test]
fn seed_dockerfiles_parse_to_the_expected_instructions() {
    let cases: &[(&str, &[&str])] = &[
        (
            "seed-01-hello.Dockerfile",
            &[
                "FROM node:20",
                "CMD [\"node\", \"-e\", \"console.log(\\\"Hello there\\\")\"]",
            ],
        ),
        (
            "seed-02-node-app.Dockerfile",
            &[
                "FROM node:20",
                "COPY index.js index.js",
                "CMD [\"node\", \"index.js\"]",
            ],
        ),
        (
            "seed-03-organizing.Dockerfile",
            &[
                "FROM node:20",
                "RUN useradd -ms /bin/bash sherzod",
                "USER sherzod",
                "WORKDIR /home/sherzod/code",
                "COPY --chown=sherzod index.js .",
                "CMD [\"node\", \"index.js\"]",
            ],
        ),
        (
            "seed-04-deps.Dockerfile",
            &[
                "FROM node:20",
                "USER node",
                "WORKDIR /home/node/code",
                "COPY --chown=node . .",
                "RUN npm ci",
                "CMD [\"node\", \"index.js\"]",
            ],
        ),
        (
            "seed-05-layers.Dockerfile",
            &[
                "FROM node:20",
                "USER node",
                "WORKDIR /home/node/code",
                "COPY --chown=node:node package*.json .",
                "RUN npm ci",
                "COPY --chown=node . .",
                "CMD [\"node\", \"index.js\"]",
            ],
        ),
        (
            "seed-06-multistage.Dockerfile",
            &[
                "FROM node:20 AS node-builder",
                "WORKDIR /builder",
                "COPY package*.json .",
                "RUN npm ci",
                "COPY . .",
                "FROM alpine:3.19",
                "RUN apk add --update nodejs",
                "RUN addgroup -S node && adduser -S node -G node",
                "USER node",
                "WORKDIR /home/node/code",
                "COPY --from=node-builder --chown=node:node /builder .",
                "CMD [\"node\", \"index.js\"]",
            ],
        ),
        (
            "seed-07-static-assets.Dockerfile",
            &[
                "FROM node:20 AS node-builder",
                "WORKDIR /app",
                "COPY . .",
                "RUN npm ci",
                "RUN npm run build",
                "FROM nginx:latest",
                "COPY --from=node-builder /app/dist /usr/share/nginx/html",
            ],
        ),
        (
            "seed-08-volumes.Dockerfile",
            &[
                "FROM node:20-alpine",
                "COPY --chown=node:node . /src",
                "WORKDIR /src",
                "CMD [\"node\", \"index.js\"]",
            ],
        ),
        (
            "seed-09-networking-app.Dockerfile",
            &[
                "FROM node:20-alpine",
                "COPY . .",
                "RUN npm ci",
                "CMD [\"node\", \"index.js\"]",
            ],
        ),
        (
            "seed-10-compose-api.Dockerfile",
            &[
                "FROM node:20",
                "USER node",
                "RUN mkdir /home/node/code",
                "WORKDIR /home/node/code",
                "COPY --chown=node:node package-lock.json package.json ./",
                "RUN npm ci",
                "COPY --chown=node:node . .",
                "CMD [\"node\", \"index.js\"]",
            ],
        ),
        (
            "seed-11-compose-web.Dockerfile",
            &[
                "FROM node:20 AS node-builder",
                "WORKDIR /app",
                "COPY . .",
                "RUN npm ci",
                "RUN npm run build",
                "FROM nginx:1.25-alpine",
                "COPY --from=node-builder /app/dist /usr/share/nginx/html",
            ],
        ),
        (
            "seed-12-compose-web-nginx.Dockerfile",
            &[
                "FROM node:20 AS node-builder",
                "WORKDIR /app",
                "COPY . .",
                "RUN npm ci",
                "ENV API_URL=http://localhost:8081/api",
                "RUN npm run build",
                "FROM nginx:1.25-alpine",
                "RUN rm /etc/nginx/conf.d/default.conf",
                "COPY nginx.conf /etc/nginx/conf.d/default.conf",
                "COPY --from=node-builder /app/dist /usr/share/nginx/html",
            ],
        ),
    ];
    for (file, want) in cases {
        assert_eq!(names(file), *want, "{file}");
    }
}

#[test]
fn seed_multistage_plans_a_small_final_stage() {
    let text =
        std::fs::read_to_string(corpus_dir().join("seed-06-multistage.Dockerfile")).expect("read");
    let plan = BuildPlan::new(&parse(&text).expect("parse"), options()).expect("plan");
    assert_eq!(plan.needed, vec![0, 1]);
    assert_eq!(
        plan.stages[1].deps.iter().copied().collect::<Vec<_>>(),
        vec![0]
    );
    let mut base = |_: &str| Ok::<_, String>(ImageConfig::default());
    let plans = plan.plan_all(&mut base).expect("steps");
    let fin = &plans[1];
    assert_eq!(fin.config.user, "node");
    assert_eq!(fin.config.working_dir, "/home/node/code");
    assert_eq!(
        fin.config.cmd,
        Some(vec!["node".to_string(), "index.js".to_string()])
    );
}
