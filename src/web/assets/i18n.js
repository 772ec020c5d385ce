// Translations of the device website (English, German). Keys used by data-i18n and by app.js.
'use strict';
const I18N = {
  en: {
    'nav.status': 'Status', 'nav.settings': 'Settings', 'nav.logout': 'Log off',
    'footer.licences': 'Open-source licences', 'footer.firmware': 'Firmware',
    'login.title': 'Log in', 'login.password': 'Device password', 'login.submit': 'Log in',
    'login.wrong': 'Wrong password.', 'login.locked': 'Too many wrong passwords. Try again later.',
    'dev.title': 'Device', 'dev.firmware': 'Firmware version', 'dev.app': 'Application program',
    'dev.uptime': 'Uptime', 'dev.ip': 'IP address (in use)', 'dev.ip_configured': 'Configured IP address (ETS)', 'dev.mac': 'MAC address', 'dev.ia': 'KNX individual address',
    'dev.prog': 'Programming mode', 'dev.link': 'KNX link', 'dev.telegrams': 'Telegrams sent / rejected',
    'on': 'on', 'off': 'off', 'yes': 'yes', 'no': 'no', 'dhcp': 'DHCP',
    'link.connected': 'connected', 'link.traffic': 'connected, traffic', 'link.reconnecting': 'reconnecting', 'link.down': 'no connection',
    'fault.title': 'Faults', 'fault.general': 'General fault', 'fault.none': 'No fault present',
    'dlm.title': 'Dynamic load management', 'dlm.off': 'DLM is off', 'dlm.mode': 'Mode',
    'dlm.per_phase': 'per phase', 'dlm.symmetric': 'symmetric', 'dlm.fuse': 'Fuse',
    'dlm.load': 'Load', 'dlm.budget': 'Budget', 'dlm.available': 'Available', 'dlm.emergency': 'Emergency mode (smart meter timeout)',
    'dlm.grid': 'Grid-supporting control', 'dlm.nocycle': 'No meter values yet', 'dlm.chart': 'Load vs budget, last hour',
    'cp.title': 'Charging point', 'cp.model': 'Model', 'cp.address': 'Address', 'cp.state': 'State',
    'cp.connected': 'Vehicle connected', 'cp.charging': 'Charging', 'cp.setpoint': 'Setpoint',
    'cp.currents': 'Current L1 / L2 / L3', 'cp.power': 'Power', 'cp.energy_last': 'Energy last charge',
    'cp.energy_total': 'Energy total', 'cp.session': 'Session', 'cp.fault': 'Last fault', 'cp.limited': 'Current set by',
    // Why a charging point gets its current (the API's `limited_by`, recorded by the core and the DLM).
    'lim.no_vehicle': 'no vehicle connected', 'lim.own_max': 'its own maximum current (not limited)',
    'lim.fair_share': 'fair share of the phase budget', 'lim.phase_l1': 'budget on L1 used up',
    'lim.phase_l2': 'budget on L2 used up', 'lim.phase_l3': 'budget on L3 used up',
    'lim.prioritised': 'the prioritised charging point takes the rest', 'lim.queued': 'waiting for its turn (queue)',
    'lim.overcurrent': 'minimum currents do not fit (OverCurrent): interrupted',
    'lim.shortage_pending': 'shortage being confirmed: minimum current', 'lim.unbalance': 'unbalanced-load limit between the phases',
    'lim.grid_control': 'grid-supporting control', 'lim.dlm_emergency': 'DLM emergency mode (minimum current)',
    'lim.high_power': 'high-power device (minimum current while waiting)', 'lim.min_switch_time': 'minimum on/off time before switching on',
    'lim.ramp': 'ramping up', 'lim.break_before_make': 'another charging point on its phases was just reduced (short wait)',
    'lim.interrupted': 'interruption (object 55)', 'lim.invalid_currents': 'invalid currents from the charging point',
    'lim.not_reachable': 'charging point not reachable', 'lim.vehicle': 'the vehicle draws less',
    'lim.setpoint': 'setpoint (object 60)',
    'set.general': 'General', 'set.logging': 'Logging mode', 'set.simple': 'Simple', 'set.extended': 'Extended',
    'set.extended_hint': 'Extended logging costs performance; switch it off after downloading.',
    'set.download': 'Download log file', 'set.password': 'Change password', 'set.current': 'Current password',
    'set.new': 'New password', 'set.repeat': 'Repeat new password', 'set.rule': 'At least 10 characters, at most 2 identical in a row, 3 of: upper case, lower case, digit, special character.',
    'set.save': 'Save', 'set.mismatch': 'The new passwords differ.', 'set.changed': 'Password changed. Please log in again.',
    'set.device': 'Device', 'set.restart': 'Restart device', 'set.reset': 'Reset to factory settings',
    'set.reset_confirm': 'Reset to factory settings? The configuration is deleted and the password is reset to the initial password.',
    'set.restart_confirm': 'Restart the device now?', 'set.restarting': 'The device restarts…',
    'set.prog': 'Programming mode', 'set.network': 'Network', 'set.dns': 'DNS address', 'set.ntp': 'NTP',
    'set.ntp_enabled': 'Synchronise time by NTP', 'set.ntp_servers': 'NTP servers (comma-separated)', 'set.saved': 'Saved.',
    'set.firmware': 'Firmware', 'set.installed': 'Installed version', 'set.staged': 'Staged version',
    'set.upload': 'Upload firmware', 'set.upload_ok': 'Firmware verified and staged:',
    'lic.title': 'Open-source licences', 'lic.intro': 'This firmware is built from these open-source packages.',
    'lic.name': 'Package', 'lic.version': 'Version', 'lic.license': 'Licence', 'lic.repo': 'Source',
    'lic.notice': 'Copyright notice', 'lic.texts': 'Licence texts', 'lic.package': 'package', 'lic.packages': 'packages',
    'lic.texts_intro': 'The full text of every licence named above, taken from the packages\' own licence files. Open a licence to read it.',
  },
  de: {
    'nav.status': 'Status', 'nav.settings': 'Einstellungen', 'nav.logout': 'Abmelden',
    'footer.licences': 'Open-Source-Lizenzen', 'footer.firmware': 'Firmware',
    'login.title': 'Anmelden', 'login.password': 'Gerätepasswort', 'login.submit': 'Anmelden',
    'login.wrong': 'Falsches Passwort.', 'login.locked': 'Zu viele falsche Passwörter. Bitte später erneut versuchen.',
    'dev.title': 'Gerät', 'dev.firmware': 'Firmware-Version', 'dev.app': 'Applikationsprogramm',
    'dev.uptime': 'Betriebszeit', 'dev.ip': 'IP-Adresse (verwendet)', 'dev.ip_configured': 'Konfigurierte IP-Adresse (ETS)', 'dev.mac': 'MAC-Adresse', 'dev.ia': 'Physikalische KNX-Adresse',
    'dev.prog': 'Programmiermodus', 'dev.link': 'KNX-Verbindung', 'dev.telegrams': 'Telegramme gesendet / verworfen',
    'on': 'ein', 'off': 'aus', 'yes': 'ja', 'no': 'nein', 'dhcp': 'DHCP',
    'link.connected': 'verbunden', 'link.traffic': 'verbunden, Telegrammverkehr', 'link.reconnecting': 'Verbindung wird wiederhergestellt', 'link.down': 'keine Verbindung',
    'fault.title': 'Störungen', 'fault.general': 'Allgemeine Störung', 'fault.none': 'Keine Störung',
    'dlm.title': 'Dynamisches Lastmanagement', 'dlm.off': 'Lastmanagement ist aus', 'dlm.mode': 'Modus',
    'dlm.per_phase': 'je Phase', 'dlm.symmetric': 'symmetrisch', 'dlm.fuse': 'Absicherung',
    'dlm.load': 'Last', 'dlm.budget': 'Budget', 'dlm.available': 'Verfügbar', 'dlm.emergency': 'Notbetrieb (Smart-Meter-Timeout)',
    'dlm.grid': 'Netzdienliche Steuerung', 'dlm.nocycle': 'Noch keine Zählerwerte', 'dlm.chart': 'Last und Budget, letzte Stunde',
    'cp.title': 'Ladepunkt', 'cp.model': 'Modell', 'cp.address': 'Adresse', 'cp.state': 'Zustand',
    'cp.connected': 'Fahrzeug verbunden', 'cp.charging': 'Lädt', 'cp.setpoint': 'Sollwert',
    'cp.currents': 'Strom L1 / L2 / L3', 'cp.power': 'Leistung', 'cp.energy_last': 'Energie letzte Ladung',
    'cp.energy_total': 'Energie gesamt', 'cp.session': 'Ladevorgang', 'cp.fault': 'Letzte Störung', 'cp.limited': 'Strom bestimmt durch',
    'lim.no_vehicle': 'kein Fahrzeug angeschlossen', 'lim.own_max': 'eigener Maximalstrom (nicht begrenzt)',
    'lim.fair_share': 'gerechter Anteil am Phasenbudget', 'lim.phase_l1': 'Budget auf L1 ausgeschöpft',
    'lim.phase_l2': 'Budget auf L2 ausgeschöpft', 'lim.phase_l3': 'Budget auf L3 ausgeschöpft',
    'lim.prioritised': 'der priorisierte Ladepunkt erhält den Rest', 'lim.queued': 'wartet in der Warteschlange',
    'lim.overcurrent': 'Mindestströme passen nicht (OverCurrent): unterbrochen',
    'lim.shortage_pending': 'Engpass wird geprüft: Mindeststrom', 'lim.unbalance': 'Schieflastbegrenzung zwischen den Phasen',
    'lim.grid_control': 'netzdienliche Steuerung', 'lim.dlm_emergency': 'Lastmanagement-Notbetrieb (Mindeststrom)',
    'lim.high_power': 'Großverbraucher (Mindeststrom während der Wartezeit)', 'lim.min_switch_time': 'Mindestschaltzeit vor dem Einschalten',
    'lim.ramp': 'Stromanstieg (Rampe)', 'lim.break_before_make': 'ein anderer Ladepunkt auf seinen Phasen wurde gerade reduziert (kurze Wartezeit)',
    'lim.interrupted': 'Unterbrechung (Objekt 55)', 'lim.invalid_currents': 'ungültige Stromwerte vom Ladepunkt',
    'lim.not_reachable': 'Ladepunkt nicht erreichbar', 'lim.vehicle': 'das Fahrzeug nimmt weniger auf',
    'lim.setpoint': 'Sollwert (Objekt 60)',
    'set.general': 'Allgemein', 'set.logging': 'Logging-Modus', 'set.simple': 'Einfach', 'set.extended': 'Erweitert',
    'set.extended_hint': 'Erweitertes Logging kostet Leistung; nach dem Herunterladen wieder ausschalten.',
    'set.download': 'Logdatei herunterladen', 'set.password': 'Passwort ändern', 'set.current': 'Aktuelles Passwort',
    'set.new': 'Neues Passwort', 'set.repeat': 'Neues Passwort wiederholen', 'set.rule': 'Mindestens 10 Zeichen, höchstens 2 gleiche hintereinander, 3 von: Groß-, Kleinbuchstabe, Ziffer, Sonderzeichen.',
    'set.save': 'Speichern', 'set.mismatch': 'Die neuen Passwörter unterscheiden sich.', 'set.changed': 'Passwort geändert. Bitte neu anmelden.',
    'set.device': 'Gerät', 'set.restart': 'Gerät neu starten', 'set.reset': 'Auf Werkseinstellungen zurücksetzen',
    'set.reset_confirm': 'Auf Werkseinstellungen zurücksetzen? Die Konfiguration wird gelöscht und das Passwort auf das Initialpasswort zurückgesetzt.',
    'set.restart_confirm': 'Gerät jetzt neu starten?', 'set.restarting': 'Das Gerät startet neu…',
    'set.prog': 'Programmiermodus', 'set.network': 'Netzwerk', 'set.dns': 'DNS-Adresse', 'set.ntp': 'NTP',
    'set.ntp_enabled': 'Zeit per NTP synchronisieren', 'set.ntp_servers': 'NTP-Server (durch Komma getrennt)', 'set.saved': 'Gespeichert.',
    'set.firmware': 'Firmware', 'set.installed': 'Installierte Version', 'set.staged': 'Bereitgestellte Version',
    'set.upload': 'Firmware hochladen', 'set.upload_ok': 'Firmware geprüft und bereitgestellt:',
    'lic.title': 'Open-Source-Lizenzen', 'lic.intro': 'Diese Firmware ist aus diesen Open-Source-Paketen gebaut.',
    'lic.name': 'Paket', 'lic.version': 'Version', 'lic.license': 'Lizenz', 'lic.repo': 'Quelle',
    'lic.notice': 'Urheberrechtsvermerk', 'lic.texts': 'Lizenztexte', 'lic.package': 'Paket', 'lic.packages': 'Pakete',
    'lic.texts_intro': 'Der vollständige Text jeder oben genannten Lizenz, aus den Lizenzdateien der Pakete. Eine Lizenz öffnen, um sie zu lesen.',
    // Fault descriptions by fault code (the API's `code`; English comes with the API's `description`).
    'fault.desc.ContactSupport': 'Ein schwerer Fehler liegt vor. Logdateien erzeugen und den Support kontaktieren.',
    'fault.desc.Conf NoCharger': 'Kein Ladepunkt ist vollständig konfiguriert (Hersteller, Modell und Adresse).',
    'fault.desc.Conf Charger': 'Ein Ladepunkt ist nicht richtig konfiguriert.',
    'fault.desc.Conf EMeter': 'Der Energiezähler eines Ladepunkts ist nicht richtig konfiguriert.',
    'fault.desc.DLMAssociation': 'Nicht alle für das Lastmanagement nötigen Gruppenobjekte sind verbunden.',
    'fault.desc.SmartMeterTOut': 'Der Smart Meter hat im Intervall keine Werte gesendet; Lastmanagement-Notbetrieb (Mindeststrom).',
    'fault.desc.OverCurrent': 'Die Mindestströme der aktiven Ladepunkte übersteigen den verfügbaren Strom; das Laden wird unterbrochen.',
    'fault.desc.DLM InvCurrent': 'Ein Ladepunkt liefert ungültige Stromwerte; das Lastmanagement kann ihn nicht berücksichtigen.',
    'fault.desc.NotReachable': 'Der Ladepunkt ist nicht erreichbar.',
    'fault.desc.WrongCharger': 'Der angeschlossene Ladepunkt ist nicht das konfigurierte Modell.',
    'fault.desc.Comm': 'Der Ladepunkt gibt fehlerhafte Antworten.',
    'fault.desc.ChargerError': 'Der Ladepunkt meldet einen internen Fehler (siehe Fehlerinfo 1–4).',
    'fault.desc.OpNotPossible': 'Der Zustand des Ladepunkts verhindert die Aktion.',
    'fault.desc.ValOutOfRange': 'Der Sollwert liegt außerhalb des zulässigen Bereichs.',
    'fault.desc.EMeterNotReach': 'Der Energiezähler am Ladepunkt ist nicht erreichbar.',
    'fault.desc.EMeter Comm': 'Der Energiezähler am Ladepunkt gibt fehlerhafte Antworten.',
    'fault.desc.EMeter Error': 'Der Energiezähler am Ladepunkt meldet einen internen Fehler.',
    // Server errors by the API's `key` (English comes with the API's `error`).
    'err.wrong_password': 'Falsches Passwort.',
    'err.locked': 'Zu viele falsche Passwörter. Bitte später erneut versuchen.',
    'err.busy': 'Das Gerät prüft gerade andere Passwörter. Bitte erneut versuchen.',
    'err.internal': 'Das Gerät konnte die Aktion nicht ausführen (Speicherfehler). Logdateien prüfen.',
    'err.dns_invalid': 'Die DNS-Adresse muss eine IPv4-Adresse a.b.c.d sein.',
    'err.ntp_invalid': 'Die NTP-Einstellungen sind ungültig (höchstens 3 Server, gültige Namen oder Adressen).',
    'err.core_down': 'Die Gateway-Steuerung läuft nicht.',
    'err.weak_length': 'Mindestens 10 Zeichen sind nötig.',
    'err.weak_repeat': 'Höchstens 2 gleiche Zeichen dürfen aufeinander folgen.',
    'err.weak_classes': '3 von: Großbuchstabe, Kleinbuchstabe, Ziffer, Sonderzeichen verwenden.',
    'err.wrong_current': 'Das aktuelle Passwort ist falsch.',
    'err.not_firmware': 'Keine knx-echarge-Firmwaredatei.',
    'err.firmware_manifest': 'Das Manifest der Firmwaredatei ist ungültig.',
    'err.firmware_product': 'Die Firmware ist für ein anderes Produkt.',
    'err.firmware_not_newer': 'Die Firmware ist nicht neuer als die installierte Version.',
    'err.firmware_damaged': 'Die Firmwaredatei ist beschädigt (Größe oder SHA-256 stimmen nicht).',
    'err.csrf': 'Die Sitzung ist ungültig. Bitte die Seite neu laden.',
    'err.cross_origin': 'Anfrage von einer fremden Seite abgelehnt.',
    'err.login_required': 'Anmeldung erforderlich.',
  },
};
const STATE_DE = ['Unzulässig', 'Startet', 'Fehler', 'Nicht verfügbar', 'Abgebrochen', 'Verfügbar', 'Verbunden',
  'Manueller Start erforderlich', 'Laden', 'Laden mit reduziertem Strom', 'Laden mit Belüftung', 'Unterbrechung'];

function lang() { return localStorage.getItem('lang') === 'de' ? 'de' : 'en'; }
// A text the server sends in English, in the page's language: `key` looked up in the current
// language only (I18N.de holds the German texts), else the server's English `fallback`.
function fromServer(key, fallback) { return (key && I18N[lang()][key]) || fallback; }
function faultDescription(f) { return fromServer(`fault.desc.${f.code}`, f.description); }
function errorText(json, fallback) { return fromServer(json && json.key && `err.${json.key}`, (json && json.error) || fallback); }
function t(key) { return (I18N[lang()] || I18N.en)[key] || I18N.en[key] || key; }
function applyI18n(root) {
  document.documentElement.lang = lang();
  (root || document).querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  const b = document.getElementById('lang');
  if (b) b.textContent = lang() === 'de' ? 'EN' : 'DE';
}
function setupLang(onChange) {
  const b = document.getElementById('lang');
  if (b) b.addEventListener('click', () => {
    localStorage.setItem('lang', lang() === 'de' ? 'en' : 'de');
    applyI18n();
    if (onChange) onChange();
  });
  applyI18n();
}
