//! The driver with an in-memory executor: cache hits, reruns from a changed COPY on,
//! --no-cache, multi-stage order and error reporting.

use std::collections::{BTreeMap, BTreeSet};

use berth_build::cache::{SourceEntry, content_digest, sources_digest};
use berth_build::copy::{ContextEntry, plan_copy};
use berth_build::driver::{BaseImage, DriveError, Executor, run};
use berth_build::{BuildOptions, BuildPlan, ImageConfig, Op, Step, parse};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ExecError(String);

/// Files of a build context and a key → done cache, as the engine would hold them.
#[derive(Default)]
struct MemExecutor {
    context: BTreeMap<String, Vec<u8>>,
    cache: BTreeSet<String>,
    executed: Vec<(usize, String)>,
    fail_on: Option<String>,
}

impl MemExecutor {
    fn entries(&self) -> Vec<ContextEntry> {
        self.context
            .keys()
            .map(|p| ContextEntry {
                path: p.clone(),
                is_dir: false,
            })
            .collect()
    }
}

impl Executor for MemExecutor {
    type Error = ExecError;

    fn base_image(&mut self, image: &str) -> Result<BaseImage, ExecError> {
        if image.starts_with("missing") {
            return Err(ExecError(format!("pull access denied for {image}")));
        }
        Ok(BaseImage {
            id: content_digest(image.as_bytes()),
            config: ImageConfig {
                env: vec!["PATH=/usr/bin:/bin".into()],
                ..Default::default()
            },
        })
    }

    fn sources_digest(&mut self, _stage: usize, step: &Step) -> Result<String, ExecError> {
        let Op::Copy(c) = &step.op else {
            return Err(ExecError("not a copy".into()));
        };
        if c.from.is_some() {
            return Ok(sources_digest(&[]));
        }
        let actions = plan_copy(
            &c.sources,
            &c.dest,
            &step.config.working_dir,
            &self.entries(),
            &|_| false,
        )
        .map_err(|e| ExecError(e.to_string()))?;
        let mut entries = Vec::new();
        for a in actions {
            for (p, bytes) in &self.context {
                if p == &a.src
                    || (a.src_is_dir && (a.src.is_empty() || p.starts_with(&format!("{}/", a.src))))
                {
                    entries.push(SourceEntry {
                        path: p.clone(),
                        mode: 0o100644,
                        uid: 0,
                        gid: 0,
                        size: bytes.len() as u64,
                        digest: content_digest(bytes),
                        link_target: None,
                    });
                }
            }
        }
        Ok(sources_digest(&entries))
    }

    fn cache_lookup(&mut self, key: &str) -> Result<bool, ExecError> {
        Ok(self.cache.contains(key))
    }

    fn execute(
        &mut self,
        stage: usize,
        step: &Step,
        _parent: &str,
        key: &str,
    ) -> Result<(), ExecError> {
        if self.fail_on.as_deref() == Some(step.instruction.original.as_str()) {
            return Err(ExecError("exit code 1".into()));
        }
        self.executed
            .push((stage, step.instruction.original.clone()));
        self.cache.insert(key.to_string());
        Ok(())
    }
}

const APP: &str = "FROM node:20\nWORKDIR /app\nCOPY package*.json .\nRUN npm ci\nCOPY . .\nCMD [\"node\", \"index.js\"]\n";

fn plan(text: &str) -> BuildPlan {
    BuildPlan::new(&parse(text).unwrap(), BuildOptions::default()).unwrap()
}

fn context() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        ("package.json".to_string(), b"{}".to_vec()),
        ("index.js".to_string(), b"1".to_vec()),
    ])
}

#[test]
fn second_build_is_fully_cached() {
    let p = plan(APP);
    let mut x = MemExecutor {
        context: context(),
        ..Default::default()
    };
    let first = run(&p, &mut x, false).unwrap();
    assert_eq!(x.executed.len(), 5);
    assert!(first.steps.iter().all(|s| !s.cached));
    assert_eq!(
        first.config().unwrap().cmd,
        Some(vec!["node".into(), "index.js".into()])
    );
    x.executed.clear();
    let second = run(&p, &mut x, false).unwrap();
    assert!(x.executed.is_empty());
    assert!(second.steps.iter().all(|s| s.cached));
    assert_eq!(first.stage_keys, second.stage_keys);
}

#[test]
fn changed_file_reruns_from_its_copy() {
    let p = plan(APP);
    let mut x = MemExecutor {
        context: context(),
        ..Default::default()
    };
    run(&p, &mut x, false).unwrap();
    x.executed.clear();
    x.context.insert("index.js".into(), b"2".to_vec());
    let out = run(&p, &mut x, false).unwrap();
    let cached: Vec<bool> = out.steps.iter().map(|s| s.cached).collect();
    assert_eq!(cached, vec![true, true, true, false, false]);
    let ran: Vec<&str> = x.executed.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(ran, vec!["COPY . .", "CMD [\"node\", \"index.js\"]"]);
}

#[test]
fn no_cache_executes_everything() {
    let p = plan(APP);
    let mut x = MemExecutor {
        context: context(),
        ..Default::default()
    };
    run(&p, &mut x, false).unwrap();
    x.executed.clear();
    run(&p, &mut x, true).unwrap();
    assert_eq!(x.executed.len(), 5);
}

#[test]
fn stages_run_in_dependency_order_and_unneeded_ones_are_skipped() {
    let text = "FROM node:20 AS build\nRUN make\nFROM alpine AS unused\nRUN nope\nFROM build AS test\nRUN test\nFROM nginx\nCOPY --from=build /out /srv\n";
    let p = plan(text);
    let mut x = MemExecutor::default();
    let out = run(&p, &mut x, false).unwrap();
    let ran: Vec<(usize, &str)> = x.executed.iter().map(|(s, i)| (*s, i.as_str())).collect();
    assert_eq!(
        ran,
        vec![(0, "RUN make"), (3, "COPY --from=build /out /srv")]
    );
    assert_eq!(
        out.stages.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![0, 3]
    );
    // a stage built FROM another continues its key chain
    let p = plan("FROM node:20 AS build\nRUN make\nFROM build\nRUN test\n");
    let mut x = MemExecutor::default();
    let out = run(&p, &mut x, false).unwrap();
    assert_eq!(out.steps[1].stage, 1);
    assert_ne!(out.steps[0].key, out.steps[1].key);
}

#[test]
fn errors_name_the_failing_step() {
    let p = plan(APP);
    let mut x = MemExecutor {
        context: context(),
        fail_on: Some("RUN npm ci".into()),
        ..Default::default()
    };
    let e = run(&p, &mut x, false).unwrap_err();
    assert!(
        matches!(
            e,
            DriveError::Step {
                stage: 0,
                step: 2,
                line: 4,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "stage 0 step 2 (dockerfile line 4): exit code 1"
    );
    let p = plan("FROM missing:1\nRUN x\n");
    let e = run(&p, &mut MemExecutor::default(), false).unwrap_err();
    assert!(
        e.to_string().contains("pull access denied for missing:1"),
        "{e}"
    );
    // a COPY whose source is missing fails before running anything
    let p = plan("FROM scratch\nCOPY nope.txt /\n");
    let e = run(&p, &mut MemExecutor::default(), false).unwrap_err();
    assert!(e.to_string().contains("\"nope.txt\": not found"), "{e}");
}
