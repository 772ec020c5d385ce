//! The ETS product database (`knx-echarge etsdb --out DIR`), read back as ETS would read it and
//! checked against the firmware's own tables:
//! * every reference (`RefId`, `ParamRefId`, `ParameterType`, `CodeSegment`, catalog and
//!   hardware links) resolves to an element with that `Id`, and ids are unique;
//! * every parameter of `etsdb/parameters.toml`, general and per charging point, sits at its
//!   offset with its size, range, enumeration and default;
//! * every group object of `group-objects/objects.toml` has its number, size, flags and DPTs;
//! * the `Dynamic` part, evaluated like ETS on the parameter memory a configuration gives,
//!   shows exactly the objects (number and DPT) the firmware builds for that configuration;
//! * the application version is the firmware's, with the same main version (spec 8.4.2).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;

use knx_echarge::catalog;
use knx_echarge::config::{Config, file};
use knx_echarge::etsdb::{ParamKind, ParamModel, ParamSet, ParamSpec, ParamValue};
use knx_echarge::knx::IndividualAddress;
use knx_echarge::knx::dpt::{Dpt, DptSize};
use knx_echarge::knxprod;
use knx_echarge::objects::TableSpec;
use knx_echarge::units::ChargePointId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roxmltree::{Document, Node};

/// The generated files, parsed.
struct Db {
    texts: Vec<(String, String)>,
}

impl Db {
    fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = knxprod::write_to_dir(dir.path()).unwrap();
        let texts = paths
            .iter()
            .map(|p| {
                (
                    p.strip_prefix(dir.path())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    std::fs::read_to_string(p).unwrap(),
                )
            })
            .collect();
        Self { texts }
    }

    fn text(&self, name: &str) -> &str {
        &self
            .texts
            .iter()
            .find(|(p, _)| p.ends_with(name))
            .unwrap_or_else(|| panic!("no {name}"))
            .1
    }

    fn app_text(&self) -> &str {
        let ids = knxprod::Ids::of_model().unwrap();
        self.text(&format!("{}.xml", ids.application))
    }
}

fn elements<'a, 'i>(doc: &'a Document<'i>, name: &str) -> Vec<Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == name)
        .collect()
}

fn by_id<'a, 'i>(doc: &'a Document<'i>) -> HashMap<String, Node<'a, 'i>> {
    let mut map = HashMap::new();
    for n in doc.descendants().filter(Node::is_element) {
        if let Some(id) = n.attribute("Id") {
            assert!(map.insert(id.to_owned(), n).is_none(), "id {id} used twice");
        }
    }
    map
}

#[test]
fn files_are_written_where_a_knxprod_keeps_them() {
    let db = Db::generate();
    let names: BTreeSet<&str> = db.texts.iter().map(|(p, _)| p.as_str()).collect();
    let ids = knxprod::Ids::of_model().unwrap();
    assert_eq!(
        names,
        BTreeSet::from([
            "M-00FA/Catalog.xml",
            "M-00FA/Hardware.xml",
            format!("M-00FA/{}.xml", ids.application).as_str(),
        ])
    );
}

/// Every reference resolves, within the three files (DPTs and media refer to the KNX master
/// data: they must be DPTs the firmware knows and TP).
#[test]
fn every_reference_resolves_and_ids_are_unique() {
    let db = Db::generate();
    let docs: Vec<Document<'_>> = db
        .texts
        .iter()
        .map(|(_, t)| Document::parse(t).unwrap())
        .collect();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for d in &docs {
        for id in by_id(d).into_keys() {
            assert!(ids.insert(id.clone()), "id {id} used in two files");
        }
    }
    let ref_attrs = [
        "RefId",
        "ParamRefId",
        "ParameterType",
        "CodeSegment",
        "ProductRefId",
        "Hardware2ProgramRefId",
    ];
    let mut checked = 0;
    for d in &docs {
        for n in d.descendants().filter(Node::is_element) {
            for attr in ref_attrs {
                if let Some(v) = n.attribute(attr) {
                    // The manufacturer is defined in the KNX master data.
                    if n.tag_name().name() == "Manufacturer" {
                        assert_eq!(v, "M-00FA");
                        continue;
                    }
                    assert!(
                        ids.contains(v),
                        "{}/@{attr}={v} resolves to nothing",
                        n.tag_name().name()
                    );
                    checked += 1;
                }
            }
            if let Some(dpts) = n.attribute("DatapointType") {
                for dpst in dpts.split_whitespace() {
                    let parts: Vec<&str> = dpst.split('-').collect();
                    assert_eq!(parts[0], "DPST", "{dpst}");
                    let dpt =
                        Dpt::from_numbers(parts[1].parse().unwrap(), parts[2].parse().unwrap());
                    assert!(dpt.is_some(), "{dpst} is not a DPT of the firmware");
                }
            }
            if let Some(media) = n.attribute("MediumTypes") {
                assert_eq!(media, "MT-0", "TP");
            }
        }
    }
    assert!(checked > 1000, "only {checked} references");
    // Every ParameterRef and ComObjectRef is used in Dynamic.
    let app = Document::parse(db.app_text()).unwrap();
    let used: BTreeSet<&str> = app
        .descendants()
        .filter(|n| {
            n.is_element() && matches!(n.tag_name().name(), "ParameterRefRef" | "ComObjectRefRef")
        })
        .filter_map(|n| n.attribute("RefId"))
        .collect();
    for r in elements(&app, "ParameterRef")
        .into_iter()
        .chain(elements(&app, "ComObjectRef"))
    {
        let id = r.attribute("Id").unwrap();
        assert!(used.contains(id), "{id} is never shown");
    }
}

/// The application version is the firmware's own (`etsdb/parameters.toml`, shown on the
/// status page) and has the firmware's main version.
#[test]
fn application_version_is_the_firmwares_and_compatible() {
    let db = Db::generate();
    let app = Document::parse(db.app_text()).unwrap();
    let program = elements(&app, "ApplicationProgram")[0];
    let model = ParamModel::get();
    let version = model.application.version_byte().unwrap();
    assert_eq!(
        program.attribute("ApplicationVersion"),
        Some(version.to_string().as_str())
    );
    assert_eq!(
        program.attribute("ApplicationNumber"),
        Some(model.application.application_number.to_string().as_str())
    );
    assert_eq!(program.attribute("MaskVersion"), Some("MV-07B0"));
    assert_eq!(
        program.attribute("Id"),
        Some(
            format!(
                "M-{:04X}_A-{:04X}-{version:02X}-0000",
                model.application.manufacturer_id, model.application.application_number
            )
            .as_str()
        )
    );
    // Spec 8.4.2: firmware and application program are compatible when their main versions
    // are equal; the ETS shows the program version as major.minor of this byte.
    let firmware_main: u8 = env!("CARGO_PKG_VERSION")
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(version >> 4, firmware_main, "main versions differ");
    assert_eq!(
        format!("{}.{}", version >> 4, version & 0x0F),
        model.application.version
    );
}

/// The segment, the table limits and the load-procedure fragments for MV-07B0.
#[test]
fn static_part_has_segment_tables_and_load_procedures() {
    let db = Db::generate();
    let app = Document::parse(db.app_text()).unwrap();
    let model = ParamModel::get();
    let seg = elements(&app, "RelativeSegment")[0];
    assert_eq!(
        seg.attribute("Size"),
        Some(model.memory.size.to_string().as_str())
    );
    assert_eq!(seg.attribute("LoadStateMachine"), Some("4"));
    assert_eq!(
        elements(&app, "AddressTable")[0].attribute("MaxEntries"),
        Some(model.tables.max_group_addresses.to_string().as_str())
    );
    assert_eq!(
        elements(&app, "AssociationTable")[0].attribute("MaxEntries"),
        Some(model.tables.max_associations.to_string().as_str())
    );
    let procs = elements(&app, "LoadProcedure");
    let merge: BTreeMap<&str, Node<'_, '_>> = procs
        .iter()
        .map(|p| {
            (
                p.attribute("MergeId").unwrap(),
                p.first_element_child().unwrap(),
            )
        })
        .collect();
    assert_eq!(merge["2"].tag_name().name(), "LdCtrlRelSegment");
    assert_eq!(merge["2"].attribute("LsmIdx"), Some("4"));
    assert_eq!(
        merge["2"].attribute("Size"),
        Some(model.memory.size.to_string().as_str())
    );
    assert_eq!(merge["4"].tag_name().name(), "LdCtrlWriteRelMem");
    assert_eq!(merge["4"].attribute("ObjIdx"), Some("4"));
    assert_eq!(
        merge["4"].attribute("Size"),
        Some(model.memory.size.to_string().as_str())
    );
    assert_eq!(
        elements(&app, "ApplicationProgram")[0].attribute("LoadProcedureStyle"),
        Some("MergedProcedure")
    );
}

/// The size in bits and the range of a parameter type element.
fn type_of<'a, 'i>(ids: &HashMap<String, Node<'a, 'i>>, param: Node<'a, 'i>) -> Node<'a, 'i> {
    let pt = ids[param.attribute("ParameterType").unwrap()];
    pt.first_element_child().unwrap()
}

fn size_in_bits(t: Node<'_, '_>) -> usize {
    match t.tag_name().name() {
        "TypeIPAddress" => 32,
        _ => t.attribute("SizeInBit").unwrap().parse().unwrap(),
    }
}

#[test]
fn every_parameter_sits_at_its_offset_with_its_size_range_and_choices() {
    let db = Db::generate();
    let app = Document::parse(db.app_text()).unwrap();
    let ids = by_id(&app);
    let params: HashMap<&str, Node<'_, '_>> = elements(&app, "Parameter")
        .into_iter()
        .map(|p| (p.attribute("Name").unwrap(), p))
        .collect();
    let model = ParamModel::get();
    let mut expected = Vec::new();
    for spec in &model.general {
        expected.push((spec.key.clone(), spec, spec.offset));
    }
    for cp in ChargePointId::all() {
        for spec in &model.charging_point {
            expected.push((
                format!("cp{}.{}", cp.number(), spec.key),
                spec,
                model.memory.block_base(cp.index()) + spec.offset,
            ));
        }
    }
    assert_eq!(params.len(), expected.len(), "one Parameter per parameter");
    for (name, spec, offset) in expected {
        let p = params
            .get(name.as_str())
            .unwrap_or_else(|| panic!("no parameter {name}"));
        let mem = p.first_element_child().unwrap();
        assert_eq!(mem.tag_name().name(), "Memory");
        assert_eq!(
            mem.attribute("Offset"),
            Some(offset.to_string().as_str()),
            "{name}"
        );
        assert_eq!(mem.attribute("BitOffset"), Some("0"), "{name}");
        assert_eq!(
            ids[mem.attribute("CodeSegment").unwrap()].tag_name().name(),
            "RelativeSegment"
        );
        assert!(offset + spec.size <= model.memory.size, "{name}");
        let t = type_of(&ids, *p);
        assert_eq!(size_in_bits(t), spec.size * 8, "{name}");
        assert_eq!(p.attribute("Text"), Some(spec.name_en.as_str()));
        match spec.kind {
            ParamKind::Uint | ParamKind::Int => {
                let (lo, hi) = spec.raw_bounds();
                assert_eq!(t.tag_name().name(), "TypeNumber", "{name}");
                assert_eq!(
                    t.attribute("minInclusive"),
                    Some(lo.to_string().as_str()),
                    "{name}"
                );
                assert_eq!(
                    t.attribute("maxInclusive"),
                    Some(hi.to_string().as_str()),
                    "{name}"
                );
                let signed = if spec.kind == ParamKind::Int {
                    "signedInt"
                } else {
                    "unsignedInt"
                };
                assert_eq!(t.attribute("Type"), Some(signed), "{name}");
            }
            ParamKind::Enum | ParamKind::Bool | ParamKind::ChargerModel | ParamKind::MeterModel => {
                let got: Vec<(i64, String)> = t
                    .children()
                    .filter(Node::is_element)
                    .map(|e| {
                        (
                            e.attribute("Value").unwrap().parse().unwrap(),
                            e.attribute("Text").unwrap().to_owned(),
                        )
                    })
                    .collect();
                let want: Vec<(i64, String)> =
                    match spec.kind {
                        ParamKind::Enum => spec
                            .values
                            .iter()
                            .map(|i| (i64::from(i.code), i.en.clone()))
                            .collect(),
                        ParamKind::Bool => vec![(0, "No".into()), (1, "Yes".into())],
                        ParamKind::ChargerModel => std::iter::once((0, "None".to_owned()))
                            .chain(
                                catalog::charger_models()
                                    .iter()
                                    .map(|m| (i64::from(m.code), m.display_name())),
                            )
                            .collect(),
                        _ => std::iter::once((0, "None".to_owned()))
                            .chain(catalog::meter_models().iter().map(|m| {
                                (i64::from(m.code), format!("{} {}", m.manufacturer, m.name))
                            }))
                            .collect(),
                    };
                assert_eq!(got, want, "{name}");
            }
            ParamKind::Ipv4 => assert_eq!(t.tag_name().name(), "TypeIPAddress"),
            ParamKind::Register => {
                assert_eq!(t.attribute("maxInclusive"), Some("65535"), "{name}");
            }
        }
        let default = match spec.default_value() {
            ParamValue::Ipv4(ip) => ip.to_string(),
            v => ParamSpec::raw(&v).to_string(),
        };
        assert_eq!(p.attribute("Value"), Some(default.as_str()), "{name}");
    }
}

/// The `ObjectSize` of a DPT as the firmware's codec has it.
fn dpt_size(dpt: &str) -> String {
    match dpt.parse::<Dpt>().unwrap().size() {
        DptSize::Bits(n) => format!("{n} Bit"),
        DptSize::Bytes(1) => "1 Byte".to_owned(),
        DptSize::Bytes(n) => format!("{n} Bytes"),
    }
}

fn dpst(dpt: &str) -> String {
    let d: Dpt = dpt.parse().unwrap();
    format!("DPST-{}-{}", d.main(), d.sub())
}

#[test]
fn every_group_object_has_its_number_size_flags_and_dpts() {
    let db = Db::generate();
    let app = Document::parse(db.app_text()).unwrap();
    let table = TableSpec::get();
    let objects: BTreeMap<u16, Node<'_, '_>> = elements(&app, "ComObject")
        .into_iter()
        .map(|o| (o.attribute("Number").unwrap().parse().unwrap(), o))
        .collect();
    let refs = elements(&app, "ComObjectRef");
    let mut expected = Vec::new();
    for o in &table.object {
        expected.push((o.number.unwrap(), o));
    }
    for cp in ChargePointId::all() {
        for o in &table.charging_point_object {
            expected.push((cp.object_base() + o.offset.unwrap(), o));
        }
    }
    assert_eq!(
        objects.keys().copied().collect::<Vec<_>>(),
        {
            let mut n: Vec<u16> = expected.iter().map(|(n, _)| *n).collect();
            n.sort_unstable();
            n
        },
        "the same object numbers"
    );
    for (number, o) in expected {
        let co = objects[&number];
        let size = o.size.replace("bit", "Bit").replace("byte", "Byte");
        assert_eq!(
            co.attribute("ObjectSize"),
            Some(size.as_str()),
            "object {number}"
        );
        let f = o.flags;
        for (attr, on) in [
            ("CommunicationFlag", f.communication),
            ("ReadFlag", f.read),
            ("WriteFlag", f.write),
            ("TransmitFlag", f.transmit),
            ("UpdateFlag", f.update),
            ("ReadOnInitFlag", f.read_on_init),
        ] {
            let want = if on { "Enabled" } else { "Disabled" };
            assert_eq!(co.attribute(attr), Some(want), "object {number} {attr}");
        }
        // The DPTs its forms carry are exactly the DPTs the firmware allows, each with its size.
        let id = co.attribute("Id").unwrap();
        let forms: Vec<Node<'_, '_>> = refs
            .iter()
            .copied()
            .filter(|r| r.attribute("RefId") == Some(id))
            .collect();
        let got: BTreeSet<(String, String)> = forms
            .iter()
            .map(|r| {
                (
                    r.attribute("DatapointType").unwrap().to_owned(),
                    r.attribute("ObjectSize").unwrap().to_owned(),
                )
            })
            .collect();
        let want: BTreeSet<(String, String)> = o
            .dpts
            .iter()
            .chain(o.variant.iter().flat_map(|v| &v.dpts))
            .map(|d| (dpst(d), dpt_size(d)))
            .collect();
        assert_eq!(got, want, "object {number}");
    }
}

/// ETS's reading of the `Dynamic` part on a parameter memory image: the visible
/// `ComObjectRef`s as (object number, DPT).
struct Ets<'a, 'i> {
    ids: HashMap<String, Node<'a, 'i>>,
}

impl Ets<'_, '_> {
    fn value(&self, param_ref: &str, mem: &[u8]) -> i64 {
        let pref = self.ids[param_ref];
        let param = self.ids[pref.attribute("RefId").unwrap()];
        let mem_el = param.first_element_child().unwrap();
        let offset: usize = mem_el.attribute("Offset").unwrap().parse().unwrap();
        let t = type_of(&self.ids, param);
        let bytes = size_in_bits(t) / 8;
        let mut raw: i64 = 0;
        for b in &mem[offset..offset + bytes] {
            raw = (raw << 8) | i64::from(*b);
        }
        if t.attribute("Type") == Some("signedInt") {
            let bits = bytes * 8;
            if raw >= 1 << (bits - 1) {
                raw -= 1 << bits;
            }
        }
        raw
    }

    fn visible(&self, node: Node<'_, '_>, mem: &[u8], out: &mut BTreeSet<(u16, String)>) {
        for c in node.children().filter(Node::is_element) {
            match c.tag_name().name() {
                "ComObjectRefRef" => {
                    let r = self.ids[c.attribute("RefId").unwrap()];
                    let co = self.ids[r.attribute("RefId").unwrap()];
                    let dpt = r
                        .attribute("DatapointType")
                        .or_else(|| co.attribute("DatapointType"))
                        .unwrap()
                        .to_owned();
                    let number = co.attribute("Number").unwrap().parse().unwrap();
                    assert!(out.insert((number, dpt)), "object {number} shown twice");
                }
                "choose" => {
                    let v = self.value(c.attribute("ParamRefId").unwrap(), mem);
                    let whens: Vec<Node<'_, '_>> = c.children().filter(Node::is_element).collect();
                    let hit = whens
                        .iter()
                        .find(|w| {
                            w.attribute("test").is_some_and(|t| {
                                t.split_whitespace().any(|x| x.parse::<i64>().unwrap() == v)
                            })
                        })
                        .or_else(|| {
                            whens
                                .iter()
                                .find(|w| w.attribute("default") == Some("true"))
                        });
                    if let Some(w) = hit {
                        self.visible(*w, mem, out);
                    }
                }
                _ => self.visible(c, mem, out),
            }
        }
    }
}

/// A random but valid value for every parameter.
fn random_params(rng: &mut StdRng) -> ParamSet {
    let model = ParamModel::get();
    let mut set = ParamSet::defaults();
    let pick = |spec: &ParamSpec, rng: &mut StdRng| -> ParamValue {
        match spec.kind {
            ParamKind::Bool => ParamValue::Bool(rng.random_bool(0.6)),
            ParamKind::Enum => {
                ParamValue::Code(spec.values[rng.random_range(0..spec.values.len())].code)
            }
            ParamKind::ChargerModel => {
                let ms = catalog::charger_models();
                ParamValue::Code(if rng.random_bool(0.1) {
                    0
                } else {
                    ms[rng.random_range(0..ms.len())].code
                })
            }
            ParamKind::MeterModel => {
                let ms = catalog::meter_models();
                ParamValue::Code(if rng.random_bool(0.2) {
                    0
                } else {
                    ms[rng.random_range(0..ms.len())].code
                })
            }
            ParamKind::Register => {
                ParamValue::Register(rng.random_bool(0.5).then(|| rng.random_range(0..u16::MAX)))
            }
            ParamKind::Uint | ParamKind::Int => {
                let (lo, hi) = spec.raw_bounds();
                ParamValue::Int(rng.random_range(lo..=hi))
            }
            ParamKind::Ipv4 => spec.default_value(),
        }
    };
    for spec in &model.general {
        let v = pick(spec, rng);
        set.set(&spec.key, v).unwrap();
    }
    for cp in ChargePointId::all() {
        for spec in &model.charging_point {
            let v = pick(spec, rng);
            set.set_cp(cp, &spec.key, v).unwrap();
        }
    }
    set
}

/// The firmware's objects under a configuration, as (number, DPT).
fn firmware_objects(config: &Config) -> BTreeSet<(u16, String)> {
    config
        .object_table()
        .objects()
        .iter()
        .map(|o| (o.number.0, dpst(&o.dpt)))
        .collect()
}

#[test]
fn dynamic_part_shows_exactly_the_firmwares_objects() {
    let db = Db::generate();
    let app = Document::parse(db.app_text()).unwrap();
    let ets = Ets { ids: by_id(&app) };
    let dynamic = elements(&app, "Dynamic")[0];
    let ia: IndividualAddress = "1.1.10".parse().unwrap();
    let mut configs: Vec<(String, Config)> = Vec::new();
    for example in ["five-chargers.toml", "single-charger.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(example);
        configs.push((example.to_owned(), file::load(&path).unwrap()));
    }
    configs.push((
        "defaults".to_owned(),
        Config::from_params(&ParamSet::defaults(), ia, BTreeMap::new()).unwrap(),
    ));
    let mut rng = StdRng::seed_from_u64(0x0EC1);
    let mut random = 0;
    for i in 0..400 {
        let params = random_params(&mut rng);
        if let Ok(config) = Config::from_params(&params, ia, BTreeMap::new()) {
            configs.push((format!("random #{i}"), config));
            random += 1;
        }
    }
    assert!(
        random > 100,
        "only {random} random configurations were valid"
    );
    let mut seen_numbers = BTreeSet::new();
    for (name, config) in &configs {
        let mem = config.to_params().unwrap().to_memory();
        let mut shown = BTreeSet::new();
        ets.visible(dynamic, &mem, &mut shown);
        let firmware = firmware_objects(config);
        assert_eq!(shown, firmware, "{name}");
        seen_numbers.extend(firmware.into_iter().map(|(n, _)| n));
    }
    // The sweep reached every object of the table.
    let all = elements(&app, "ComObject").len();
    assert_eq!(seen_numbers.len(), all, "objects never shown in the sweep");
}

/// `knx-echarge etsdb --out DIR` writes the files and says what it wrote.
#[test]
fn cli_writes_the_product_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_knx-echarge"))
        .args(["etsdb", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Hardware.xml"), "{stdout}");
    assert!(stdout.contains("compatible, same main version"), "{stdout}");
    assert!(stdout.contains("placeholder"), "{stdout}");
    assert!(dir.path().join("M-00FA/Catalog.xml").is_file());
    // German texts are there for what ETS shows.
    let app_path = std::fs::read_dir(dir.path().join("M-00FA"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("_A-"))
        .unwrap();
    let text = std::fs::read_to_string(app_path).unwrap();
    let doc = Document::parse(&text).unwrap();
    let lang = elements(&doc, "Language")[0];
    assert_eq!(lang.attribute("Identifier"), Some("de-DE"));
    let german: BTreeSet<&str> = elements(&doc, "Translation")
        .into_iter()
        .filter_map(|t| t.attribute("Text"))
        .collect();
    assert!(german.contains("Dynamisches Lastmanagement"));
    assert!(german.contains("Überstromschutzeinrichtung"));
    assert!(german.contains("Ladepunktzustand – Status"));
}
