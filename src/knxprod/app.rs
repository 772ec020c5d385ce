//! The application program file: `Static` (segment, parameter types, parameters with their
//! memory, group objects, table limits, load-procedure fragments) and `Dynamic` (what ETS
//! shows under which parameter values), with German translations.

use crate::catalog::{self, Capability, Metering};
use crate::etsdb::{EnumItem, ParamKind, ParamModel, ParamSpec, ShowIf};
use crate::knx::dpt::{Dpt, DptSize};
use crate::objects::spec::{ObjectSpec, TableSpec};
use crate::objects::{Condition, Flags};
use crate::units::ChargePointId;

use super::dynamic::Formula;
use super::xml::Node;
use super::{Ids, KnxprodError, MASK_VERSION, german, knx_root};

/// The parameter-memory segment's load state machine: interface object 4 (application
/// program) of MV-07B0.
pub(crate) const PARAMETER_LSM: u8 = 4;

/// A translated attribute: (element id, attribute name, German text).
type Texts = Vec<(String, &'static str, String)>;

/// The DPT of a "main.sub" string as the KNX master data names it (`DPST-14-19`).
pub(crate) fn dpst(dpt: &str) -> Result<String, KnxprodError> {
    let parsed: Dpt = dpt
        .parse()
        .map_err(|_| KnxprodError::Model(format!("unknown DPT `{dpt}`")))?;
    Ok(format!("DPST-{}-{}", parsed.main(), parsed.sub()))
}

/// The `ObjectSize` of a DPT ("1 Bit", "2 Bytes" …).
pub(crate) fn dpt_object_size(dpt: &str) -> Result<String, KnxprodError> {
    let parsed: Dpt = dpt
        .parse()
        .map_err(|_| KnxprodError::Model(format!("unknown DPT `{dpt}`")))?;
    Ok(match parsed.size() {
        DptSize::Bits(n) => format!("{n} Bit"),
        DptSize::Bytes(1) => "1 Byte".to_owned(),
        DptSize::Bytes(n) => format!("{n} Bytes"),
    })
}

/// The `ObjectSize` of the table's data width ("1 bit" → "1 Bit", "4 bytes" → "4 Bytes").
pub(crate) fn object_size(size: &str) -> Result<String, KnxprodError> {
    let (n, unit) = size
        .split_once(' ')
        .ok_or_else(|| KnxprodError::Model(format!("object size `{size}`")))?;
    let unit = match unit {
        "bit" => "Bit",
        "byte" => "Byte",
        "bytes" => "Bytes",
        _ => return Err(KnxprodError::Model(format!("object size `{size}`"))),
    };
    Ok(format!("{n} {unit}"))
}

fn flag(on: bool) -> &'static str {
    if on { "Enabled" } else { "Disabled" }
}

/// CamelCase of a parameter key, for ids: `dlm.meter.connection` → `DlmMeterConnection`.
fn camel(key: &str) -> String {
    key.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next()
                .map(|c| c.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The generator's state: ids, texts to translate, counters.
struct Builder<'a> {
    app: &'a str,
    model: &'static ParamModel,
    texts: Texts,
    blocks: u32,
    separators: u32,
}

/// Where a parameter lives: general, or charging point `cp`.
#[derive(Clone, Copy)]
enum Scope {
    General,
    Cp(ChargePointId),
}

/// The number in a parameter's id: its index (general) or 1000·n + index (charging point n).
fn param_number(scope: Scope, index: usize) -> usize {
    match scope {
        Scope::General => index + 1,
        Scope::Cp(cp) => usize::from(cp.number()) * 1000 + index + 1,
    }
}

impl Builder<'_> {
    fn param_id(&self, scope: Scope, index: usize) -> String {
        format!("{}_P-{}", self.app, param_number(scope, index))
    }

    fn param_ref_id(&self, scope: Scope, index: usize) -> String {
        let n = param_number(scope, index);
        format!("{}_P-{n}_R-{n}", self.app)
    }

    fn specs(&self, scope: Scope) -> &'static [ParamSpec] {
        match scope {
            Scope::General => &self.model.general,
            Scope::Cp(_) => &self.model.charging_point,
        }
    }

    /// The ParameterRef id and spec of `key` in `scope`.
    fn lookup(
        &self,
        scope: Scope,
        key: &str,
    ) -> Result<(String, &'static ParamSpec), KnxprodError> {
        let (index, spec) = self
            .specs(scope)
            .iter()
            .enumerate()
            .find(|(_, p)| p.key == key)
            .ok_or_else(|| KnxprodError::Model(format!("no parameter `{key}`")))?;
        Ok((self.param_ref_id(scope, index), spec))
    }

    /// The raw values of config-file values of `spec`.
    fn codes(spec: &ParamSpec, values: &[toml::Value]) -> Result<Vec<i64>, KnxprodError> {
        values
            .iter()
            .map(|v| {
                spec.from_toml(v)
                    .map(|pv| ParamSpec::raw(&pv))
                    .map_err(|e| KnxprodError::Model(format!("{} = {v}: {e}", spec.key)))
            })
            .collect()
    }

    /// `key` (in `scope`) has one of the config-file `values`.
    fn test(&self, scope: Scope, key: &str, values: &[&str]) -> Result<Formula, KnxprodError> {
        let (id, spec) = self.lookup(scope, key)?;
        let values: Vec<toml::Value> = values
            .iter()
            .map(|v| match *v {
                "true" => toml::Value::Boolean(true),
                "false" => toml::Value::Boolean(false),
                s => toml::Value::String(s.to_owned()),
            })
            .collect();
        Ok(Formula::is(&id, Self::codes(spec, &values)?))
    }

    /// The model codes of charging point `cp` for which `pick` holds.
    fn model_test(
        &self,
        cp: ChargePointId,
        pick: impl Fn(&catalog::ChargerModel) -> bool,
    ) -> Result<Formula, KnxprodError> {
        let (id, _) = self.lookup(Scope::Cp(cp), "model")?;
        let codes = catalog::charger_models()
            .iter()
            .filter(|m| pick(m))
            .map(|m| i64::from(m.code))
            .collect();
        Ok(Formula::is(&id, codes))
    }

    /// A parameter's `when` list as a formula.
    fn show_if(&self, scope: Scope, spec: &ParamSpec) -> Result<Formula, KnxprodError> {
        let conds = spec
            .show_if()
            .map_err(|e| KnxprodError::Model(format!("{}: {e}", spec.key)))?;
        let mut all = Vec::new();
        for cond in conds {
            all.push(match (cond, scope) {
                (
                    ShowIf::Value {
                        key,
                        values,
                        negate,
                    },
                    _,
                ) => {
                    let (id, other) = self.lookup(scope, &key)?;
                    let codes = Self::codes(other, &values)?;
                    if negate {
                        Formula::is_not(&id, codes)
                    } else {
                        Formula::is(&id, codes)
                    }
                }
                (ShowIf::Capability(cap), Scope::Cp(cp)) => self.model_test(cp, |m| m.has(cap))?,
                (ShowIf::OptionalMetering, Scope::Cp(cp)) => {
                    self.model_test(cp, |m| m.metering == Metering::Optional)?
                }
                (_, Scope::General) => {
                    return Err(KnxprodError::Model(format!(
                        "{}: model condition on a general parameter",
                        spec.key
                    )));
                }
            });
        }
        Ok(Formula::And(all))
    }

    /// The formula of one object condition of the group-object table (the same rules as
    /// `objects::Context::holds` with the configuration's capabilities).
    fn condition(
        &self,
        cond: Condition,
        cp: Option<ChargePointId>,
    ) -> Result<Formula, KnxprodError> {
        let g = Scope::General;
        let need_cp = || {
            cp.ok_or_else(|| {
                KnxprodError::Model(format!(
                    "{cond:?}: charging-point condition on a device object"
                ))
            })
        };
        Ok(match cond {
            Condition::Dlm(on) => {
                self.test(g, "dlm.enabled", &[if on { "true" } else { "false" }])?
            }
            Condition::MeterThreePhase(three) => self.test(
                g,
                "dlm.meter.connection",
                &[if three { "3-phase" } else { "1-phase" }],
            )?,
            Condition::MeterPower(power) => self.test(
                g,
                "dlm.meter.measurement",
                &[if power { "power" } else { "current" }],
            )?,
            Condition::MonitoringInOperation => {
                self.test(g, "dlm.monitoring.mode", &["values-and-in-operation"])?
            }
            Condition::ChargingPoint => {
                let cp = need_cp()?;
                let (model, _) = self.lookup(Scope::Cp(cp), "model")?;
                Formula::And(vec![
                    self.test(Scope::Cp(cp), "enabled", &["true"])?,
                    Formula::is_not(&model, vec![0]),
                ])
            }
            Condition::TemperatureSending => {
                let cp = need_cp()?;
                let (id, spec) = self.lookup(Scope::Cp(cp), "send_temperature")?;
                Formula::is_not(&id, Self::codes(spec, &["off".into()])?)
            }
            Condition::Capability(cap) => self.capability(need_cp()?, cap)?,
        })
    }

    /// The charging point offers `cap`: its model does, or the model allows a retrofit meter
    /// and the configured meter (a listed model, or manual registers) measures it.
    fn capability(&self, cp: ChargePointId, cap: Capability) -> Result<Formula, KnxprodError> {
        let s = Scope::Cp(cp);
        let (meter_model, _) = self.lookup(s, "meter.model")?;
        let meter_codes: Vec<i64> = catalog::meter_models()
            .iter()
            .filter(|m| m.capabilities.contains(&cap))
            .map(|m| i64::from(m.code))
            .collect();
        let listed_meter = Formula::And(vec![
            self.test(s, "meter.kind", &["model"])?,
            Formula::is(&meter_model, meter_codes),
        ]);
        let manual = Formula::And(vec![
            self.test(s, "meter.kind", &["manual"])?,
            self.manual_meter(cp, cap)?,
        ]);
        Ok(Formula::Or(vec![
            self.model_test(cp, |m| m.has(cap))?,
            Formula::And(vec![
                self.model_test(cp, |m| m.metering == Metering::Optional && !m.has(cap))?,
                Formula::Or(vec![listed_meter, manual]),
            ]),
        ]))
    }

    /// What a manually configured meter measures follows from the registers set (as
    /// `meters::settings::RetrofitMeter::capabilities`): a register is set when it is not
    /// 0xFFFF.
    fn manual_meter(&self, cp: ChargePointId, cap: Capability) -> Result<Formula, KnxprodError> {
        let set = |key: &str| -> Result<Formula, KnxprodError> {
            let (id, _) = self.lookup(Scope::Cp(cp), key)?;
            Ok(Formula::is_not(&id, vec![i64::from(u16::MAX)]))
        };
        let any = |keys: &[&str]| -> Result<Formula, KnxprodError> {
            Ok(Formula::Or(
                keys.iter().map(|k| set(k)).collect::<Result<_, _>>()?,
            ))
        };
        let energy = ["meter.energy_l1", "meter.energy_l2", "meter.energy_l3"];
        Ok(match cap {
            Capability::Current => {
                any(&["meter.current_l1", "meter.current_l2", "meter.current_l3"])?
            }
            Capability::Power | Capability::PowerPhases => {
                any(&["meter.power_l1", "meter.power_l2", "meter.power_l3"])?
            }
            Capability::EnergyTotal | Capability::EnergySession => any(&[
                "meter.energy_l1",
                "meter.energy_l2",
                "meter.energy_l3",
                "meter.energy_total",
            ])?,
            Capability::EnergyPhases => {
                Formula::And(energy.iter().map(|k| set(k)).collect::<Result<_, _>>()?)
            }
            _ => Formula::False,
        })
    }

    fn block(&mut self, name: &str, en: &str, de: &str) -> Node {
        self.blocks += 1;
        let id = format!("{}_PB-{}", self.app, self.blocks);
        self.texts.push((id.clone(), "Text", de.to_owned()));
        Node::new("ParameterBlock")
            .attr("Id", id)
            .attr("Name", name)
            .attr("Text", en)
    }

    fn separator(&mut self, en: &str) -> Node {
        self.separators += 1;
        Node::new("ParameterSeparator")
            .attr("Id", format!("{}_PS-{}", self.app, self.separators))
            .attr("Text", en)
    }

    /// The `ParameterRefRef`s of `specs` (indexes into the scope), each group of consecutive
    /// parameters with the same `when` inside its choice.
    fn param_refs(&mut self, scope: Scope, indexes: &[usize]) -> Result<Vec<Node>, KnxprodError> {
        let specs = self.specs(scope);
        let items: Vec<(usize, &'static ParamSpec)> = indexes
            .iter()
            .filter_map(|&i| specs.get(i).map(|s| (i, s)))
            .collect();
        let mut out = Vec::new();
        for group in items.chunk_by(|a, b| a.1.when == b.1.when) {
            let Some(&(_, first)) = group.first() else {
                continue;
            };
            let mut shown = Vec::new();
            for &(index, spec) in group {
                shown.push(
                    Node::new("ParameterRefRef").attr("RefId", self.param_ref_id(scope, index)),
                );
                if let Some(help) = &spec.help {
                    shown.push(self.separator(help));
                }
            }
            out.extend(self.show_if(scope, first)?.emit(shown, Vec::new()));
        }
        Ok(out)
    }
}

/// One form of a group object in ETS: a `ComObjectRef` with the name and DPT it overrides.
struct Form {
    id: String,
}

/// The group object `o` with number `number`: its `ComObject`, its forms (`ComObjectRef`s)
/// and the `Dynamic` elements that show the right form when it exists.
fn object(
    b: &mut Builder<'_>,
    o: &ObjectSpec,
    number: u16,
    cp: Option<ChargePointId>,
) -> Result<(Node, Vec<Node>, Vec<Node>), KnxprodError> {
    let object_id = format!("{}_O-{number}", b.app);
    let (function_en, function_de) = match cp {
        Some(cp) => (
            format!("Charging point {}", cp.number()),
            format!("Ladepunkt {}", cp.number()),
        ),
        None if o.exists.iter().any(|c| matches!(c, Condition::Dlm(_))) => (
            "Dynamic load management".to_owned(),
            "Dynamisches Lastmanagement".to_owned(),
        ),
        None => ("General".to_owned(), "Allgemein".to_owned()),
    };
    // The object's own name and DPT: the object's, or its most general (last) variant's.
    let (name_en, name_de, default_dpt) = match o.variant.last() {
        Some(v) if o.name_en.is_empty() => {
            (v.name_en.clone(), v.name_de.clone(), v.default_dpt.clone())
        }
        _ => (o.name_en.clone(), o.name_de.clone(), o.default_dpt.clone()),
    };
    let Flags {
        communication,
        read,
        write,
        transmit,
        update,
        read_on_init,
    } = o.flags;
    let name = match cp {
        Some(cp) => format!("cp{}-{}", cp.number(), o.key),
        None => o.key.clone(),
    };
    let com_object = Node::new("ComObject")
        .attr("Id", &object_id)
        .attr("Name", name)
        .attr("Text", &name_en)
        .attr("Number", number)
        .attr("FunctionText", &function_en)
        .attr("ObjectSize", object_size(&o.size)?)
        .attr("ReadFlag", flag(read))
        .attr("WriteFlag", flag(write))
        .attr("CommunicationFlag", flag(communication))
        .attr("TransmitFlag", flag(transmit))
        .attr("UpdateFlag", flag(update))
        .attr("ReadOnInitFlag", flag(read_on_init))
        .attr("DatapointType", dpst(&default_dpt)?);
    b.texts.push((object_id.clone(), "Text", name_de));
    b.texts
        .push((object_id.clone(), "FunctionText", function_de));

    let mut refs = Vec::new();
    let mut next = 0u32;
    let mut form = |text: Option<(&str, &str)>,
                    dpt: &str,
                    refs: &mut Vec<Node>,
                    texts: &mut Texts|
     -> Result<Form, KnxprodError> {
        next += 1;
        let id = format!("{object_id}_R-{next}");
        let mut node = Node::new("ComObjectRef")
            .attr("Id", &id)
            .attr("RefId", &object_id);
        if let Some((en, de)) = text {
            node = node.attr("Text", en);
            texts.push((id.clone(), "Text", de.to_owned()));
        }
        node = node
            .attr("ObjectSize", dpt_object_size(dpt)?)
            .attr("DatapointType", dpst(dpt)?);
        refs.push(node);
        Ok(Form { id })
    };

    // The shown elements of one name/DPT alternative: a choice over the DPT parameter (the
    // firmware falls back to the default DPT for a value outside the object's list).
    let mut shown = |b: &mut Builder<'_>,
                     text: Option<(&str, &str)>,
                     dpts: &[String],
                     default: &str,
                     param: Option<&str>,
                     refs: &mut Vec<Node>|
     -> Result<Vec<Node>, KnxprodError> {
        let leaf = |f: &Form| Node::new("ComObjectRefRef").attr("RefId", &f.id);
        let Some(param) = param else {
            let f = form(text, default, refs, &mut b.texts)?;
            return Ok(vec![leaf(&f)]);
        };
        let (param_ref, spec) = match (param.strip_prefix("cp."), cp) {
            (Some(key), Some(cp)) => b.lookup(Scope::Cp(cp), key)?,
            _ => b.lookup(Scope::General, param)?,
        };
        let mut choose = Node::new("choose").attr("ParamRefId", param_ref);
        let mut default_form = None;
        for dpt in dpts {
            let f = form(text, dpt, refs, &mut b.texts)?;
            let codes: Vec<String> = spec
                .values
                .iter()
                .filter(|item: &&EnumItem| item.value.as_str() == Some(dpt.as_str()))
                .map(|item| item.code.to_string())
                .collect();
            if !codes.is_empty() {
                choose.push(
                    Node::new("when")
                        .attr("test", codes.join(" "))
                        .child(leaf(&f)),
                );
            }
            if dpt == default {
                default_form = Some(f);
            }
        }
        let default_form = default_form
            .ok_or_else(|| KnxprodError::Model(format!("{}: default DPT not in list", o.key)))?;
        choose.push(
            Node::new("when")
                .attr("default", "true")
                .child(leaf(&default_form)),
        );
        Ok(vec![choose])
    };

    let body = if o.variant.is_empty() {
        shown(
            b,
            None,
            &o.dpts,
            &o.default_dpt,
            o.dpt_param.as_deref(),
            &mut refs,
        )?
    } else {
        // First matching variant wins: build the chain from the last one backwards.
        let mut chain = Vec::new();
        for v in o.variant.iter().rev() {
            let when = Formula::And(
                v.when
                    .iter()
                    .map(|c| b.condition(*c, cp))
                    .collect::<Result<_, _>>()?,
            );
            let then = shown(
                b,
                Some((v.name_en.as_str(), v.name_de.as_str())),
                &v.dpts,
                v.default_dpt.as_str(),
                v.dpt_param.as_deref(),
                &mut refs,
            )?;
            chain = when.emit(then, chain);
        }
        chain
    };
    let exists = Formula::And(
        o.exists
            .iter()
            .map(|c| b.condition(*c, cp))
            .collect::<Result<_, _>>()?,
    );
    Ok((com_object, refs, exists.emit(body, Vec::new())))
}

/// A parameter type per distinct type: (id, element, German enumeration texts).
fn parameter_type(
    b: &mut Builder<'_>,
    scope: Scope,
    spec: &ParamSpec,
    defined: &mut std::collections::BTreeSet<String>,
) -> (String, Option<Node>) {
    let app = b.app;
    let enumeration = |b: &mut Builder<'_>, id: &str, items: Vec<(i64, String, String)>| {
        let mut restriction = Node::new("TypeRestriction")
            .attr("Base", "Value")
            .attr("SizeInBit", 8);
        for (code, en, de) in items {
            let en_id = format!("{id}_EN-{code}");
            b.texts.push((en_id.clone(), "Text", de));
            restriction.push(
                Node::new("Enumeration")
                    .attr("Text", en)
                    .attr("Value", code)
                    .attr("Id", en_id),
            );
        }
        restriction
    };
    let prefix = match scope {
        Scope::General => "",
        Scope::Cp(_) => "Cp",
    };
    let name = match spec.kind {
        ParamKind::Bool => "YesNo".to_owned(),
        ParamKind::ChargerModel => "ChargerModel".to_owned(),
        ParamKind::MeterModel => "MeterModel".to_owned(),
        ParamKind::Ipv4 => "IPv4".to_owned(),
        ParamKind::Register => "Register".to_owned(),
        ParamKind::Enum | ParamKind::Uint | ParamKind::Int => {
            format!("{prefix}{}", camel(&spec.key))
        }
    };
    let id = format!("{app}_PT-{name}");
    // Types are shared: by every yes/no parameter, by the same parameter of every charging
    // point …; the first user defines it.
    if !defined.insert(id.clone()) {
        return (id, None);
    }
    let content = match spec.kind {
        ParamKind::Bool => enumeration(
            b,
            &id,
            vec![
                (0, "No".into(), "Nein".into()),
                (1, "Yes".into(), "Ja".into()),
            ],
        ),
        ParamKind::Enum => enumeration(
            b,
            &id,
            spec.values
                .iter()
                .map(|i| (i64::from(i.code), i.en.clone(), i.de.clone()))
                .collect(),
        ),
        ParamKind::ChargerModel => enumeration(
            b,
            &id,
            std::iter::once((0, "None".to_owned(), "Keines".to_owned()))
                .chain(
                    catalog::charger_models()
                        .iter()
                        .map(|m| (i64::from(m.code), m.display_name(), m.display_name())),
                )
                .collect(),
        ),
        ParamKind::MeterModel => enumeration(
            b,
            &id,
            std::iter::once((0, "None".to_owned(), "Keines".to_owned()))
                .chain(catalog::meter_models().iter().map(|m| {
                    let name = format!("{} {}", m.manufacturer, m.name);
                    (i64::from(m.code), name.clone(), name)
                }))
                .collect(),
        ),
        ParamKind::Ipv4 => Node::new("TypeIPAddress")
            .attr("AddressType", "HostAddress")
            .attr("Version", "IPv4"),
        ParamKind::Register => Node::new("TypeNumber")
            .attr("SizeInBit", 16)
            .attr("Type", "unsignedInt")
            .attr("minInclusive", 0)
            .attr("maxInclusive", u16::MAX),
        ParamKind::Uint | ParamKind::Int => {
            let (lo, hi) = spec.raw_bounds();
            Node::new("TypeNumber")
                .attr("SizeInBit", spec.size * 8)
                .attr(
                    "Type",
                    if spec.kind == ParamKind::Int {
                        "signedInt"
                    } else {
                        "unsignedInt"
                    },
                )
                .attr("minInclusive", lo)
                .attr("maxInclusive", hi)
        }
    };
    let node = Node::new("ParameterType")
        .attr("Id", &id)
        .attr("Name", &name)
        .child(content);
    (id, Some(node))
}

/// The unit ETS shows after a value: the unit, with the step for scaled values ("× 0.1 A").
fn suffix(spec: &ParamSpec) -> Option<String> {
    match (spec.scale, spec.unit.as_deref()) {
        (Some(scale), unit) => Some(
            format!("× {scale} {}", unit.unwrap_or(""))
                .trim_end()
                .to_owned(),
        ),
        (None, Some(unit)) if !unit.is_empty() => Some(unit.to_owned()),
        _ if spec.kind == ParamKind::Register => Some("(65535 = not used)".to_owned()),
        _ => None,
    }
}

/// The ETS default of a parameter (its raw memory value; IPv4 dotted).
fn default_text(spec: &ParamSpec) -> String {
    match spec.default_value() {
        crate::etsdb::ParamValue::Ipv4(ip) => ip.to_string(),
        v => ParamSpec::raw(&v).to_string(),
    }
}

/// The application program file.
pub(super) fn application(ids: &Ids, version: u8) -> Result<Node, KnxprodError> {
    let model = ParamModel::get();
    let table = TableSpec::get();
    let app = ids.application.as_str();
    let mut b = Builder {
        app,
        model,
        texts: Vec::new(),
        blocks: 0,
        separators: 0,
    };
    let segment = format!("{app}_RS-{PARAMETER_LSM:02}-00000");

    // Parameters, their types and references.
    let mut types = Vec::new();
    let mut type_ids = std::collections::BTreeSet::new();
    let mut params = Vec::new();
    let mut param_refs = Vec::new();
    let scopes: Vec<Scope> = std::iter::once(Scope::General)
        .chain(ChargePointId::all().map(Scope::Cp))
        .collect();
    for &scope in &scopes {
        let base = match scope {
            Scope::General => 0,
            Scope::Cp(cp) => model.memory.block_base(cp.index()),
        };
        for (index, spec) in b.specs(scope).iter().enumerate() {
            let (type_id, type_node) = parameter_type(&mut b, scope, spec, &mut type_ids);
            types.extend(type_node);
            let id = b.param_id(scope, index);
            let name = match scope {
                Scope::General => spec.key.clone(),
                Scope::Cp(cp) => format!("cp{}.{}", cp.number(), spec.key),
            };
            b.texts.push((id.clone(), "Text", spec.name_de.clone()));
            params.push(
                Node::new("Parameter")
                    .attr("Id", &id)
                    .attr("Name", name)
                    .attr("ParameterType", type_id)
                    .attr("Text", &spec.name_en)
                    .attr_opt("SuffixText", suffix(spec))
                    .attr("Value", default_text(spec))
                    .child(
                        Node::new("Memory")
                            .attr("CodeSegment", &segment)
                            .attr("Offset", base + spec.offset)
                            .attr("BitOffset", 0),
                    ),
            );
            param_refs.push(
                Node::new("ParameterRef")
                    .attr("Id", b.param_ref_id(scope, index))
                    .attr("RefId", id),
            );
        }
    }

    // Group objects and the dynamic part.
    let mut com_objects = Vec::new();
    let mut com_object_refs = Vec::new();
    let tabs: Vec<String> = {
        let mut t: Vec<String> = Vec::new();
        for p in &model.general {
            let tab = p.tab.clone().unwrap_or_else(|| "KNX".to_owned());
            if !t.contains(&tab) {
                t.push(tab);
            }
        }
        t
    };
    let mut independent = Node::new("ChannelIndependentBlock");
    for tab in &tabs {
        let (en, de) = match tab.as_str() {
            "DLM" => ("Dynamic load management", "Dynamisches Lastmanagement"),
            "KNX" => ("General", "Allgemein"),
            other => (other, other),
        };
        let mut block = b.block(tab, en, de);
        let indexes: Vec<usize> = model
            .general
            .iter()
            .enumerate()
            .filter(|(_, p)| p.tab.as_deref().unwrap_or("KNX") == tab)
            .map(|(i, _)| i)
            .collect();
        for node in b.param_refs(Scope::General, &indexes)? {
            block.push(node);
        }
        for o in &table.object {
            // DLM objects on the DLM page, the others on the general one.
            let is_dlm = o.exists.iter().any(|c| matches!(c, Condition::Dlm(_)));
            let page = if is_dlm { "DLM" } else { "KNX" };
            if tab != page {
                continue;
            }
            let Some(number) = o.number else { continue };
            let (co, refs, shown) = object(&mut b, o, number, None)?;
            com_objects.push((number, co));
            com_object_refs.extend(refs);
            for node in shown {
                block.push(node);
            }
        }
        independent.push(block);
    }
    let mut dynamic = Node::new("Dynamic").child(independent);
    for cp in ChargePointId::all() {
        let n = cp.number();
        let mut channel = Node::new("Channel")
            .attr("Id", format!("{app}_CH-{n}"))
            .attr("Name", format!("ChargingPoint{n}"))
            .attr("Number", n)
            .attr("Text", format!("Charging point {n}"));
        b.texts
            .push((format!("{app}_CH-{n}"), "Text", format!("Ladepunkt {n}")));
        let specs = &model.charging_point;
        let (meter, point): (Vec<usize>, Vec<usize>) = (0..specs.len())
            .partition(|&i| specs.get(i).is_some_and(|p| p.key.starts_with("meter.")));
        let mut block = b.block(
            &format!("ChargingPoint{n}"),
            &format!("Charging point {n}"),
            &format!("Ladepunkt {n}"),
        );
        for node in b.param_refs(Scope::Cp(cp), &point)? {
            block.push(node);
        }
        for o in &table.charging_point_object {
            let Some(offset) = o.offset else { continue };
            let number = cp.object_base() + offset;
            let (co, refs, shown) = object(&mut b, o, number, Some(cp))?;
            com_objects.push((number, co));
            com_object_refs.extend(refs);
            for node in shown {
                block.push(node);
            }
        }
        channel.push(block);
        if let Some(first) = meter.first().and_then(|&i| specs.get(i)) {
            let mut meter_block = b.block(
                &format!("ChargingPoint{n}Meter"),
                &format!("Charging point {n}: electricity meter"),
                &format!("Ladepunkt {n}: Stromzähler"),
            );
            for node in b.param_refs(Scope::Cp(cp), &meter)? {
                meter_block.push(node);
            }
            let visible = b.show_if(Scope::Cp(cp), first)?;
            for node in visible.emit(vec![meter_block], Vec::new()) {
                channel.push(node);
            }
        }
        dynamic.push(channel);
    }
    com_objects.sort_by_key(|(n, _)| *n);
    let com_objects = com_objects.into_iter().map(|(_, node)| node);

    let size = model.memory.size;
    let static_part = Node::new("Static")
        .child(
            Node::new("Code").child(
                Node::new("RelativeSegment")
                    .attr("Id", &segment)
                    .attr("Name", "Parameters")
                    .attr("Offset", 0)
                    .attr("Size", size)
                    .attr("LoadStateMachine", PARAMETER_LSM),
            ),
        )
        .child(Node::new("ParameterTypes").children(types))
        .child(Node::new("Parameters").children(params))
        .child(Node::new("ParameterRefs").children(param_refs))
        .child(Node::new("ComObjectTable").children(com_objects))
        .child(Node::new("ComObjectRefs").children(com_object_refs))
        .child(Node::new("AddressTable").attr("MaxEntries", model.tables.max_group_addresses))
        .child(Node::new("AssociationTable").attr("MaxEntries", model.tables.max_associations))
        .child(
            Node::new("LoadProcedures")
                .child(
                    Node::new("LoadProcedure").attr("MergeId", 2).child(
                        Node::new("LdCtrlRelSegment")
                            .attr("AppliesTo", "full,par")
                            .attr("LsmIdx", PARAMETER_LSM)
                            .attr("Size", size)
                            .attr("Mode", 1)
                            .attr("Fill", 0),
                    ),
                )
                .child(
                    Node::new("LoadProcedure").attr("MergeId", 4).child(
                        Node::new("LdCtrlWriteRelMem")
                            .attr("AppliesTo", "full,par")
                            .attr("ObjIdx", PARAMETER_LSM)
                            .attr("Offset", 0)
                            .attr("Size", size)
                            .attr("Verify", "true"),
                    ),
                ),
        )
        .child(Node::new("Options"));

    let program = Node::new("ApplicationProgram")
        .attr("Id", app)
        .attr("ApplicationNumber", model.application.application_number)
        .attr("ApplicationVersion", version)
        .attr("ProgramType", "ApplicationProgram")
        .attr("MaskVersion", MASK_VERSION)
        .attr("Name", "knx-echarge")
        .attr("LoadProcedureStyle", "MergedProcedure")
        .attr("PeiType", 0)
        .attr("DefaultLanguage", "en-US")
        .attr("DynamicTableManagement", "false")
        .attr("Linkable", "false")
        .attr("MinEtsVersion", "5.0")
        .child(static_part)
        .child(dynamic);
    let texts = std::mem::take(&mut b.texts);
    Ok(knx_root(
        ids,
        vec![
            Node::new("ApplicationPrograms").child(program),
            german(app, &texts),
        ],
    ))
}
