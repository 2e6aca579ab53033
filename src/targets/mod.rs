//! What differs per serving stack sits behind [`Target`]: the resource m2s manages, the object
//! it renders for a model, where each setting lands, what the stack's admission webhooks would
//! refuse, and how the object reports readiness. The engine (`mlflow → desired → plan → apply`)
//! knows nothing else about a stack. A new target is one module and one line in [`TARGETS`].

use std::fmt;

use serde_json::{json, Value};

use crate::json::set_pointer;
use crate::naming;
use crate::quantity::Quantity;
use crate::settings::ServingSettings;

mod kserve;
mod seldon_v1;
mod seldon_v2;
mod split;

pub use split::{CanaryStatus, Companion, TrafficSplit};

/// KServe's name format (`IsvcNameFmt`), for the tests of generated names.
#[cfg(test)]
pub(crate) fn kserve_name_format(name: &str) -> bool {
    kserve::is_isvc_name(name)
}

/// Every target m2s can manage; the first is the default.
pub static TARGETS: &[&dyn Target] = &[&seldon_v1::SeldonV1, &kserve::KServe, &seldon_v2::SeldonV2];

/// The target called `id` (`--target`).
pub fn by_id(id: &str) -> Option<&'static dyn Target> {
    TARGETS.iter().copied().find(|t| t.id() == id)
}

pub(crate) fn ids() -> Vec<&'static str> {
    TARGETS.iter().map(|t| t.id()).collect()
}

/// The Kubernetes resource of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group, e.g. `serving.kserve.io`.
    pub group: &'static str,
    /// API version, e.g. `v1beta1`.
    pub version: &'static str,
    /// Kind, e.g. `InferenceService`.
    pub kind: &'static str,
    /// Resource name in URLs and RBAC rules, e.g. `inferenceservices`.
    pub plural: &'static str,
}

impl Resource {
    /// `group/version`, as an object's `apiVersion`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
    /// `plural.group`, as RBAC rules and `kubectl get` name it.
    pub fn qualified_plural(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }
    /// "1 SeldonDeployment", "2 InferenceServices".
    pub fn count(&self, n: usize) -> String {
        format!("{n} {}", self.kinds(n))
    }
    /// The kind, plural unless `n` is 1.
    pub fn kinds(&self, n: usize) -> String {
        if n == 1 {
            self.kind.to_string()
        } else {
            format!("{}s", self.kind)
        }
    }
}

/// A setting m2s can put on an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// The serving image (`M2S_SELDON_DEF_IMAGE`, or the model's image tag).
    Image,
    /// The image pull secret (`M2S_REGISTRY_SECRET`).
    RegistrySecret,
    /// The Secret with storage credentials (`M2S_MODEL_SECRET`).
    ModelSecret,
    /// The serving pods' ServiceAccount (`M2S_SERVICE_ACCOUNT`).
    ServiceAccount,
    /// `m2s.replicas`.
    Replicas,
    /// `m2s.min-replicas`.
    MinReplicas,
    /// `m2s.max-replicas`.
    MaxReplicas,
    /// `m2s.cpu`: the CPU request.
    Cpu,
    /// `m2s.memory`: the memory request and limit.
    Memory,
    /// `m2s.gpu`: the `nvidia.com/gpu` limit.
    Gpu,
}

impl Setting {
    /// Settings whose values are Kubernetes quantities, compared by value.
    pub fn is_quantity(self) -> bool {
        matches!(self, Setting::Cpu | Setting::Memory | Setting::Gpu)
    }
}

/// Where one setting lands: a JSON pointer into the object, and how plan reasons call it.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The setting written here.
    pub setting: Setting,
    /// JSON pointer into the object (`/spec/...`).
    pub pointer: &'static str,
    /// What plan reasons call it ("memory request").
    pub label: &'static str,
}

/// Readiness as every target reports it, in m2s's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// No status yet: the stack's controller has not seen the object.
    Pending,
    /// The controller works on it (pods starting, a model loading).
    Creating,
    /// It serves.
    Available,
    /// It does not serve, and will not by itself.
    Failed,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Pending => "Pending",
            State::Creating => "Creating",
            State::Available => "Available",
            State::Failed => "Failed",
        })
    }
}

/// An object's readiness, read from its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Where it stands.
    pub state: State,
    /// Why, in the controller's words.
    pub message: Option<String>,
    /// Where it serves, when the stack reports a URL.
    pub url: Option<String>,
}

impl Readiness {
    /// No status yet.
    pub fn pending() -> Readiness {
        Readiness {
            state: State::Pending,
            message: None,
            url: None,
        }
    }
}

/// How a Seldon Core 1 predictor serves an MLflow model (`M2S_SELDON_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Seldon's own protocol: the `seldonio/mlflowserver` image (no `spec.protocol`).
    Seldon,
    /// The open inference protocol v2 (`spec.protocol: v2`): MLServer.
    V2,
}

impl Protocol {
    /// The setting's value, as it is written in `spec.protocol`.
    pub fn id(self) -> &'static str {
        match self {
            Protocol::Seldon => "seldon",
            Protocol::V2 => "v2",
        }
    }
}

/// The model server a stack runs for an MLflow model, and the MLflow it loads models with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    /// What runs, e.g. `seldonio/mlserver:1.5.0`.
    pub server: &'static str,
    /// The MLflow release inside it, e.g. `2.10.2`.
    pub mlflow: &'static str,
    /// Where that comes from: the stack's release and the file that says so.
    pub source: &'static str,
}

/// Readiness of an object whose `metadata.generation` is `generation`: a status written for
/// an older generation (`status.observedGeneration` below it) says nothing yet about the
/// current spec, so it counts as `Creating` whatever it said. Controllers that do not report
/// `observedGeneration` are taken at their word.
pub(crate) fn readiness_of(
    target: &dyn Target,
    generation: Option<i64>,
    status: &Value,
) -> Readiness {
    let mut r = target.readiness(status);
    if let (Some(current), Some(observed)) = (generation, status["observedGeneration"].as_i64()) {
        if observed < current && r.state != State::Pending {
            r.state = State::Creating;
            r.message = Some(format!(
                "the {} controller has not yet seen generation {current} (status of generation {observed})",
                target.resource().kind
            ));
        }
    }
    r
}

/// What one serving stack needs. Implementations are unit structs in this module's children.
pub trait Target: Sync {
    /// The `--target` value.
    fn id(&self) -> &'static str;
    /// The Kubernetes resource m2s manages for this stack.
    fn resource(&self) -> Resource;
    /// URI schemes the stack's model fetcher reads (a location outside them is an entry error).
    fn fetchable_schemes(&self) -> &'static [&'static str];
    /// The object's `spec` with what every model gets: the fixed fields and the model URI.
    fn base_spec(&self, model_uri: &str) -> Value;
    /// Pointers of the fields [`base_spec`](Target::base_spec) writes; an overlay may not touch them.
    fn base_pointers(&self) -> &'static [&'static str];
    /// Where each setting lands; a setting without a field has no counterpart on this target.
    fn fields(&self) -> &'static [Field];
    /// What the reasons call an unset image ("(Seldon default)").
    fn default_image_label(&self) -> &'static str;
    /// Why the stack has no field for `setting` and what to do instead (`": …"`, or empty):
    /// appended to the refusal of such a setting, from the environment or a tag.
    fn no_counterpart_hint(&self, _setting: Setting) -> &'static str {
        ""
    }
    /// The protocols the stack serves an MLflow model with (`M2S_SELDON_PROTOCOL`), its
    /// default first; empty when there is no choice.
    fn protocols(&self) -> &'static [Protocol] {
        &[]
    }
    /// Writes `protocol`, one of [`protocols`](Target::protocols), into a rendered object.
    fn set_protocol(&self, _object: &mut Value, _protocol: Protocol) -> Result<(), String> {
        Ok(())
    }
    /// The model server the stack runs for an MLflow model with `protocol` (`None`: the
    /// default), as the stack's release ships it: what preflight checks a model against.
    fn runtime(&self, protocol: Option<Protocol>) -> Runtime;
    /// Completes an object once its settings are set, or refuses a combination of settings the
    /// stack cannot express.
    fn finish(&self, _object: &mut Value, _settings: &ServingSettings) -> Result<(), String> {
        Ok(())
    }
    /// The longest object name that fits in `namespace`: what the stack derives from a name
    /// and the namespace (a host label, say) must stay valid.
    fn max_name_len(&self, _namespace: &str) -> usize {
        naming::MAX_NAME_LEN
    }
    /// Refuses a namespace in which no name fits (a configuration error at start).
    fn check_namespace(&self, namespace: &str) -> Result<(), String> {
        let room = self.max_name_len(namespace);
        if room < naming::MIN_HASHED_LEN {
            return Err(format!(
                "namespace {namespace:?} leaves room for names of {room} characters on target {}, fewer than the {} of the shortest name m2s gives (m2s-1a2b3c4d)",
                self.id(),
                naming::MIN_HASHED_LEN
            ));
        }
        Ok(())
    }
    /// The object name for `model` served for a stage or alias in `namespace`.
    fn object_name(&self, model: &str, selector: &str, namespace: &str) -> String {
        naming::deployment_name(model, selector, self.max_name_len(namespace))
    }
    /// The stack's admission rules for what m2s writes: an object that breaks one is an entry
    /// error, never a write the cluster refuses.
    fn admit(&self, name: &str, object: &Value) -> Result<(), String>;
    /// Readiness from the object's `status` (`Value::Null` when it has none).
    fn readiness(&self, status: &Value) -> Readiness;
    /// How the stack splits traffic for a progressive rollout; `None`: it cannot.
    fn traffic_split(&self) -> Option<&'static dyn TrafficSplit> {
        None
    }
}

impl fmt::Debug for dyn Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The platform's settings every object of a namespace gets (from the environment), and the
/// serving image of one model: what [`setting_values`] writes beside the model's own tags.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Platform<'a> {
    pub(crate) image: Option<&'a str>,
    pub(crate) registry_secret: Option<&'a str>,
    pub(crate) model_secret: Option<&'a str>,
    pub(crate) service_account: Option<&'a str>,
}

/// The settings of one object with their values as JSON, in a fixed order.
pub(crate) fn setting_values(
    settings: &ServingSettings,
    platform: &Platform,
) -> Vec<(Setting, Value)> {
    let mut out = Vec::new();
    let mut put = |s: Setting, v: Option<Value>| {
        if let Some(v) = v {
            out.push((s, v));
        }
    };
    let quantity = |q: Option<Quantity>| q.map(|q| json!(q.to_string()));
    put(Setting::Image, platform.image.map(|i| json!(i)));
    put(
        Setting::RegistrySecret,
        platform.registry_secret.map(|s| json!([{ "name": s }])),
    );
    put(
        Setting::ModelSecret,
        platform.model_secret.map(|s| json!(s)),
    );
    put(
        Setting::ServiceAccount,
        platform.service_account.map(|s| json!(s)),
    );
    put(Setting::Replicas, settings.replicas.map(|r| json!(r)));
    put(
        Setting::MinReplicas,
        settings.min_replicas.map(|r| json!(r)),
    );
    put(
        Setting::MaxReplicas,
        settings.max_replicas.map(|r| json!(r)),
    );
    put(Setting::Cpu, quantity(settings.cpu));
    put(Setting::Memory, quantity(settings.memory));
    put(Setting::Gpu, quantity(settings.gpu));
    out
}

/// Writes each setting at its fields' pointers. A setting without a field, or two settings
/// writing one field, is refused; `origin` names where a setting came from.
pub(crate) fn apply_settings(
    target: &dyn Target,
    object: &mut Value,
    values: &[(Setting, Value)],
    origin: impl Fn(Setting) -> String,
) -> Result<(), String> {
    let mut written: Vec<(&'static str, Setting)> = Vec::new();
    for (setting, value) in values {
        let fields: Vec<&Field> = target
            .fields()
            .iter()
            .filter(|f| f.setting == *setting)
            .collect();
        if fields.is_empty() {
            return Err(format!(
                "{} has no counterpart on target {} ({}){}",
                origin(*setting),
                target.id(),
                target.resource().kind,
                target.no_counterpart_hint(*setting)
            ));
        }
        for f in fields {
            if let Some((_, other)) = written.iter().find(|(p, _)| *p == f.pointer) {
                return Err(format!(
                    "{} and {} both set {} on target {}; use one of them",
                    origin(*other),
                    origin(*setting),
                    f.label,
                    target.id()
                ));
            }
            written.push((f.pointer, *setting));
            set_pointer(object, f.pointer, value.clone())?;
        }
    }
    Ok(())
}

/// The value at each field of `object`, as reasons show it (`None`: unset).
pub(crate) fn field_values(target: &dyn Target, object: &Value) -> Vec<Option<String>> {
    target
        .fields()
        .iter()
        .map(|f| match object.pointer(f.pointer) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => Some(v.to_string()),
        })
        .collect()
}

/// "replicas 1 → 3", one per field whose value differs (quantities by value).
pub(crate) fn field_changes(
    target: &dyn Target,
    before: &[Option<String>],
    after: &[Option<String>],
) -> Vec<String> {
    let mut reasons: Vec<String> = Vec::new();
    for (f, (old, new)) in target.fields().iter().zip(before.iter().zip(after)) {
        let same = match (old, new) {
            (Some(a), Some(b)) if f.setting.is_quantity() => {
                match (Quantity::parse(a), Quantity::parse(b)) {
                    (Ok(a), Ok(b)) => a.same_value(&b),
                    _ => a == b,
                }
            }
            (a, b) => a == b,
        };
        if same {
            continue;
        }
        let unset = if f.setting == Setting::Image {
            target.default_image_label()
        } else {
            "(unset)"
        };
        let reason = format!(
            "{} {} → {}",
            f.label,
            old.as_deref().unwrap_or(unset),
            new.as_deref().unwrap_or(unset)
        );
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    reasons
}

/// `object` with its quantity fields spelt by value alone ([`Quantity::value_key`], where
/// they parse), so that a spelling the API server or a controller chose does not look like a
/// change; `None` when there is nothing to respell.
pub(crate) fn canonical_quantities(target: &dyn Target, object: &Value) -> Option<Value> {
    let mut changed: Option<Value> = None;
    for f in target.fields().iter().filter(|f| f.setting.is_quantity()) {
        let current = changed.as_ref().unwrap_or(object).pointer(f.pointer);
        let text = match current {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        let Ok(q) = Quantity::parse(&text) else {
            continue;
        };
        let canonical = q.value_key();
        if current != Some(&Value::String(canonical.clone())) {
            let copy = changed.get_or_insert_with(|| object.clone());
            if let Some(slot) = copy.pointer_mut(f.pointer) {
                *slot = Value::String(canonical);
            }
        }
    }
    changed
}

/// The scheme of a URI (`s3` of `s3://b/k`), if it has one.
fn scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once("://")?;
    (!scheme.is_empty()
        && scheme
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+.-".contains(&c)))
    .then_some(scheme)
}

/// Whether `target`'s model fetcher reads `uri`.
pub(crate) fn fetches(target: &dyn Target, uri: &str) -> bool {
    scheme(uri).is_some_and(|s| {
        target
            .fetchable_schemes()
            .iter()
            .any(|f| f.eq_ignore_ascii_case(s))
    })
}

/// The schemes `target` fetches, for messages: `s3://, gs://`.
pub(crate) fn fetchable_list(target: &dyn Target) -> String {
    target
        .fetchable_schemes()
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stack's rule on storage URIs: its fetcher (`who`) must read `uri`'s scheme.
pub(crate) fn check_fetchable(target: &dyn Target, uri: &str, who: &str) -> Result<(), String> {
    if fetches(target, uri) {
        return Ok(());
    }
    Err(format!(
        "{who} cannot fetch {uri:?} (supported: {})",
        fetchable_list(target)
    ))
}

/// The condition of `type_` in a Kubernetes-style `status.conditions` list.
pub(crate) fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

pub(crate) fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(String::from)
}

#[cfg(test)]
mod tests;
