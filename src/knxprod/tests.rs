use super::app::{dpst, dpt_object_size, object_size};
use super::*;

#[test]
fn ids_follow_the_knx_id_rules() {
    let ids = Ids::new(0x00FA, 0xEC01, 0x01);
    assert_eq!(ids.manufacturer, "M-00FA");
    assert_eq!(ids.application, "M-00FA_A-EC01-01-0000");
    assert_eq!(ids.hardware, "M-00FA_H-EC05-1");
    assert_eq!(ids.product, "M-00FA_H-EC05-1_P-KNX.2DECH.2D05");
    assert_eq!(ids.hardware2program, "M-00FA_H-EC05-1_HP-EC01-01-0000");
    assert_eq!(
        ids.catalog_item,
        "M-00FA_H-EC05-1_HP-EC01-01-0000_CI-KNX.2DECH.2D05-1"
    );
    assert_eq!(
        Ids::new(0x00FA, 0xEC01, 0x2A).application,
        "M-00FA_A-EC01-2A-0000"
    );
}

#[test]
fn id_parts_escape_everything_but_letters_and_digits() {
    assert_eq!(id_part("AB-12 x"), "AB.2D12.20x");
    assert_eq!(id_part("ü"), ".C3.BC");
}

#[test]
fn dpts_and_sizes_as_ets_writes_them() {
    assert_eq!(dpst("14.019").unwrap(), "DPST-14-19");
    assert_eq!(dpst("1.001").unwrap(), "DPST-1-1");
    assert!(dpst("99.999").is_err());
    assert_eq!(dpt_object_size("1.017").unwrap(), "1 Bit");
    assert_eq!(dpt_object_size("5.010").unwrap(), "1 Byte");
    assert_eq!(dpt_object_size("9.021").unwrap(), "2 Bytes");
    assert_eq!(dpt_object_size("16.001").unwrap(), "14 Bytes");
    assert_eq!(object_size("1 bit").unwrap(), "1 Bit");
    assert_eq!(object_size("4 bytes").unwrap(), "4 Bytes");
    assert!(object_size("4 nibbles").is_err());
}

#[test]
fn the_embedded_sources_generate_three_well_formed_files() {
    let db = generate().unwrap();
    assert_eq!(db.files.len(), 3);
    for (path, text) in &db.files {
        let doc =
            roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            doc.root_element().tag_name().namespace(),
            Some(SCHEMA_NAMESPACE)
        );
    }
    assert!(db.file("Hardware.xml").is_some());
    assert!(db.file("Catalog.xml").is_some());
    assert!(db.file(&format!("{}.xml", db.ids.application)).is_some());
}
