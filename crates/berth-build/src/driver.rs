//! Runs a [`BuildPlan`] through an [`Executor`] the engine implements: bases are resolved,
//! every step gets its cache key, cached steps are skipped and the rest executed.

use std::collections::BTreeMap;

use crate::cache;
use crate::config::ImageConfig;
use crate::plan::{Base, BuildPlan, Op, PlanError, StagePlan, Step};

/// A resolved external base image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// Image id (config digest); the root of the stage's cache keys.
    pub id: String,
    pub config: ImageConfig,
}

/// What the engine does for the driver.
pub trait Executor {
    type Error: std::error::Error + 'static;

    /// Resolves (pulls if needed) an external image named by FROM.
    fn base_image(&mut self, image: &str) -> Result<BaseImage, Self::Error>;

    /// The [`cache::sources_digest`] of the files a COPY/ADD step reads (from the context,
    /// an earlier stage or an image).
    fn sources_digest(&mut self, stage: usize, step: &Step) -> Result<String, Self::Error>;

    /// Whether a result is stored under `key`.
    fn cache_lookup(&mut self, key: &str) -> Result<bool, Self::Error>;

    /// Executes a step on top of `parent` (the previous key) and stores it under `key`.
    fn execute(
        &mut self,
        stage: usize,
        step: &Step,
        parent: &str,
        key: &str,
    ) -> Result<(), Self::Error>;
}

/// What happened to one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub stage: usize,
    pub step: usize,
    pub key: String,
    pub cached: bool,
}

/// The result of a build.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOutcome {
    /// Plans of the stages built, in build order (the target last).
    pub stages: Vec<StagePlan>,
    pub steps: Vec<StepOutcome>,
    /// The final key of each built stage (its base key when it has no steps).
    pub stage_keys: BTreeMap<usize, String>,
}

impl BuildOutcome {
    /// The final config of the target stage.
    pub fn config(&self) -> Option<&ImageConfig> {
        self.stages.last().map(|s| &s.config)
    }
}

/// Errors of [`run`].
#[derive(Debug, thiserror::Error)]
pub enum DriveError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("resolving base image {image:?}: {source}")]
    Base { image: String, source: E },
    #[error("stage {stage} step {step} (dockerfile line {line}): {source}")]
    Step {
        stage: usize,
        step: usize,
        line: usize,
        source: E,
    },
}

/// Builds the stages the target needs, in order. With `no_cache`, nothing is looked up.
/// After the first miss in a stage the rest of that stage is executed without lookups.
pub fn run<X: Executor>(
    plan: &BuildPlan,
    exec: &mut X,
    no_cache: bool,
) -> Result<BuildOutcome, DriveError<X::Error>> {
    let platform = plan.platform().to_string();
    let mut done: BTreeMap<usize, StagePlan> = BTreeMap::new();
    let mut stage_keys: BTreeMap<usize, String> = BTreeMap::new();
    let mut outcomes = Vec::new();
    let mut order = Vec::new();
    for &s in &plan.needed {
        let (root, base_config) = match &plan.stages[s].base {
            Base::Scratch => (
                cache::base_key("scratch", &platform),
                ImageConfig::default(),
            ),
            Base::Image(i) => {
                let b = exec.base_image(i).map_err(|source| DriveError::Base {
                    image: i.clone(),
                    source,
                })?;
                (cache::base_key(&b.id, &platform), b.config)
            }
            Base::Stage(b) => {
                let key = stage_keys
                    .get(b)
                    .cloned()
                    .ok_or(PlanError::NoSuchStage(*b))?;
                let config = done
                    .get(b)
                    .map(|p| p.config.clone())
                    .ok_or(PlanError::NoSuchStage(*b))?;
                (key, config)
            }
        };
        let sp = plan.stage_steps(s, &base_config)?;
        let mut parent = root;
        let mut probing = !no_cache;
        for (i, step) in sp.steps.iter().enumerate() {
            let err = |source| DriveError::Step {
                stage: s,
                step: i,
                line: step.line,
                source,
            };
            let digest = match step.op {
                Op::Copy(_) | Op::Add(_) => Some(exec.sources_digest(s, step).map_err(err)?),
                _ => None,
            };
            let key = cache::step_key(&parent, step, digest.as_deref());
            let cached = probing && exec.cache_lookup(&key).map_err(err)?;
            if !cached {
                probing = false;
                exec.execute(s, step, &parent, &key).map_err(err)?;
            }
            outcomes.push(StepOutcome {
                stage: s,
                step: i,
                key: key.clone(),
                cached,
            });
            parent = key;
        }
        stage_keys.insert(s, parent);
        done.insert(s, sp.clone());
        order.push(sp);
    }
    Ok(BuildOutcome {
        stages: order,
        steps: outcomes,
        stage_keys,
    })
}
