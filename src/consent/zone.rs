//! The callee's time zone, guessed from their telephone number.
//!
//! Calling-hours rules speak of the callee's wall clock, so the gate, the
//! pacer and the options a prompt offers all need the zone the person is
//! in, never the server's or the enterprise's. When nothing better is
//! known (no zone on the person's record), the number is the only clue:
//! its country, and in countries that span zones its area code.
//!
//! That clue is a guess. A mobile number travels with its owner, a ported
//! number keeps an area code its owner left long ago, and some area codes
//! serve places on both sides of a zone line. So the answer is a
//! [`ZoneGuess`]: one zone when the number's country or area keeps one
//! clock, every candidate zone when it could be in several, or nothing.
//! Compliance must be conservative with an ambiguous guess: calling hours
//! hold only if they hold in *every* candidate zone
//! ([`ZoneGuess::within_hours`], [`ZoneGuess::next_allowed`]). The primary
//! zone ([`ZoneGuess::zone_or`]) is for display and wording, not for the
//! check.
//!
//! Rules, applied everywhere below:
//!
//! - A country or area whose people all keep one clock is `Exact`, even if
//!   IANA names several zones for it with today's identical rules.
//! - A number whose area (or, for mobiles, whose country) spans zones is
//!   `Ambiguous`, listing each zone with a distinct clock, the one serving
//!   the most people first.
//! - Enclaves of well under one per cent of an area's people (Easter
//!   Island, the Chatham Islands, Fernando de Noronha, Alaska's western
//!   Aleutians) are ignored and named where the rule is written, because
//!   making a whole area ambiguous would shorten everyone's calling hours
//!   for their sake.
//! - Non-geographic numbers (toll-free, premium, satellite, international
//!   services) and countries not listed here are `Unknown`; callers fall
//!   back to a zone they know (the enterprise's, or a configured default).
//!
//! Pure: no I/O, no clock; the tables are static.

mod nanp;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::calling_hours::CallingHours;
use super::number::E164;

/// Rounds [`ZoneGuess::next_allowed`] may take. Each round moves to the
/// latest opening among the candidate zones; zones a few hours apart agree
/// within two or three rounds, so this only stops zones whose windows never
/// overlap.
const MAX_ROUNDS: usize = 16;

/// How far [`ZoneGuess::next_allowed`] looks before giving up.
const LOOKAHEAD: Duration = Duration::days(8);

/// What a number says about the zone its owner is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneGuess {
    /// The number's country or area keeps one clock.
    Exact(Tz),
    /// The number may be in any of these zones (at least two, each with a
    /// distinct clock); the first serves the most people.
    Ambiguous { zones: Vec<Tz> },
    /// The number says nothing usable: non-geographic, or a country or area
    /// code not in the tables.
    Unknown,
}

impl ZoneGuess {
    fn from_zones(zones: &[Tz]) -> ZoneGuess {
        match zones {
            [] => ZoneGuess::Unknown,
            [zone] => ZoneGuess::Exact(*zone),
            _ => ZoneGuess::Ambiguous {
                zones: zones.to_vec(),
            },
        }
    }

    /// Every zone the number may be in: one for `Exact`, all of them for
    /// `Ambiguous`, none for `Unknown`. A compliance check must hold in each.
    pub fn candidate_zones(&self) -> &[Tz] {
        match self {
            ZoneGuess::Exact(zone) => std::slice::from_ref(zone),
            ZoneGuess::Ambiguous { zones } => zones,
            ZoneGuess::Unknown => &[],
        }
    }

    /// The single most likely zone, if any.
    pub fn primary(&self) -> Option<Tz> {
        self.candidate_zones().first().copied()
    }

    /// The most likely zone, or `fallback` when the number says nothing.
    /// For showing times to a person; checks use [`ZoneGuess::zones_or`].
    pub fn zone_or(&self, fallback: Tz) -> Tz {
        self.primary().unwrap_or(fallback)
    }

    /// The zones a compliance check must satisfy: the candidates, or
    /// `fallback` alone when the number says nothing.
    pub fn zones_or(&self, fallback: Tz) -> Vec<Tz> {
        match self.candidate_zones() {
            [] => vec![fallback],
            zones => zones.to_vec(),
        }
    }

    /// Whether `instant` is inside `hours` in every zone the number may be
    /// in (`fallback` when it says nothing).
    pub fn within_hours(&self, hours: &CallingHours, instant: DateTime<Utc>, fallback: Tz) -> bool {
        self.zones_or(fallback)
            .into_iter()
            .all(|zone| hours.contains(instant, zone))
    }

    /// The earliest instant at or after `instant` that is inside `hours` in
    /// every candidate zone (`fallback` when the number says nothing), or
    /// `None` if the zones' windows do not meet within a week.
    ///
    /// Each round jumps to the latest next opening among the zones: every
    /// instant skipped is outside some zone's hours, so the first instant
    /// all zones accept is the earliest one.
    pub fn next_allowed(
        &self,
        hours: &CallingHours,
        instant: DateTime<Utc>,
        fallback: Tz,
    ) -> Option<DateTime<Utc>> {
        let zones = self.zones_or(fallback);
        let limit = instant + LOOKAHEAD;
        let mut candidate = instant;
        for _ in 0..MAX_ROUNDS {
            let latest = zones
                .iter()
                .map(|&zone| hours.next_allowed(candidate, zone))
                .max()?;
            if latest == candidate {
                return Some(candidate);
            }
            if latest > limit {
                return None;
            }
            candidate = latest;
        }
        None
    }
}

/// Guesses the zone of the person who answers `number`; see the module
/// documentation for what the answer means and how to use it.
pub fn callee_zone(number: &E164) -> ZoneGuess {
    let Some(parts) = number.parts() else {
        return ZoneGuess::Unknown;
    };
    let national = parts.national;
    if parts.country_code == 1 {
        // The area code decides, whatever region the metadata names: it
        // covers the United States, Canada and the Caribbean alike.
        return national
            .get(..3)
            .and_then(|npa| npa.parse::<u16>().ok())
            .and_then(nanp::zones)
            .map_or(ZoneGuess::Unknown, ZoneGuess::from_zones);
    }
    let Some(region) = parts.region else {
        return ZoneGuess::Unknown;
    };
    match region.as_str() {
        "AU" => australia(national),
        "BR" => brazil(national),
        "CL" => chile(national),
        "ES" => spain(national),
        "ID" => indonesia(national),
        "MX" => mexico(national),
        "PT" => portugal(national),
        "RU" => russia(national),
        code => country_zones(code).map_or(ZoneGuess::Unknown, ZoneGuess::from_zones),
    }
}

/// The zones of a country whose numbers carry no finer clue.
fn country_zones(region: &str) -> Option<&'static [Tz]> {
    COUNTRIES
        .binary_search_by_key(&region, |&(code, _)| code)
        .ok()
        .and_then(|i| COUNTRIES.get(i))
        .map(|&(_, zones)| zones)
}

fn exact(zone: Tz) -> ZoneGuess {
    ZoneGuess::Exact(zone)
}

fn either(zones: &[Tz]) -> ZoneGuess {
    ZoneGuess::from_zones(zones)
}

/// Australia: the one-digit area code after the trunk 0. Landlines follow
/// their state; mobiles (4) may be anywhere on the mainland. Eucla's
/// unofficial UTC+8:45 is ignored.
fn australia(national: &str) -> ZoneGuess {
    use Tz::{
        Australia__Adelaide as ADELAIDE, Australia__Brisbane as BRISBANE,
        Australia__Darwin as DARWIN, Australia__Perth as PERTH, Australia__Sydney as SYDNEY,
    };
    let has = |prefix: &str| national.starts_with(prefix);
    if has("26563") {
        // Lord Howe Island, on a Sydney area code but half an hour ahead.
        exact(Tz::Australia__Lord_Howe)
    } else if has("2") {
        exact(SYDNEY)
    } else if has("36") {
        exact(Tz::Australia__Hobart)
    } else if has("3") {
        exact(Tz::Australia__Melbourne)
    } else if has("7") {
        exact(BRISBANE)
    } else if has("88087") || has("88088") {
        // Broken Hill: New South Wales, on South Australian time and numbers.
        exact(Tz::Australia__Broken_Hill)
    } else if has("889") {
        exact(DARWIN)
    } else if has("88") {
        exact(ADELAIDE)
    } else if has("89") || has("86") {
        exact(PERTH)
    } else if has("87") {
        // Newer numbers shared by South Australia and the Northern Territory.
        either(&[ADELAIDE, DARWIN])
    } else if has("4") {
        // Melbourne and Hobart keep Sydney's clock; listing them adds nothing.
        either(&[SYDNEY, BRISBANE, ADELAIDE, DARWIN, PERTH])
    } else {
        ZoneGuess::Unknown
    }
}

/// Brazil: the two-digit DDD (area code) is the state, for landlines and
/// mobiles alike. Zones are the states' own IANA zones, so a return of
/// daylight saving to some states only would reach the right numbers.
fn brazil(national: &str) -> ZoneGuess {
    let Some(ddd) = national.get(..2).and_then(|d| d.parse::<u8>().ok()) else {
        return ZoneGuess::Unknown;
    };
    let zone = match ddd {
        11..=19
        | 21
        | 22
        | 24
        | 27
        | 28
        | 31..=35
        | 37
        | 38
        | 41..=49
        | 51
        | 53..=55
        | 61
        | 62
        | 64 => Tz::America__Sao_Paulo,
        63 => Tz::America__Araguaina,
        65 | 66 => Tz::America__Cuiaba,
        67 => Tz::America__Campo_Grande,
        68 => Tz::America__Rio_Branco,
        69 => Tz::America__Porto_Velho,
        71 | 73..=75 | 77 => Tz::America__Bahia,
        79 | 82 => Tz::America__Maceio,
        // Pernambuco; Fernando de Noronha (UTC-2, a few thousand people)
        // shares 81 and is ignored.
        81 | 87 => Tz::America__Recife,
        83..=86 | 88 | 89 | 98 | 99 => Tz::America__Fortaleza,
        91 | 94 | 96 => Tz::America__Belem,
        93 => Tz::America__Santarem,
        92 => Tz::America__Manaus,
        // Western Amazonas keeps UTC-5.
        97 => return either(&[Tz::America__Manaus, Tz::America__Eirunepe]),
        95 => Tz::America__Boa_Vista,
        _ => return ZoneGuess::Unknown,
    };
    exact(zone)
}

/// Chile: Magallanes (area code 61) keeps UTC-3 all year; the rest, mobiles
/// included, Santiago's clock. Easter Island is ignored.
fn chile(national: &str) -> ZoneGuess {
    if national.starts_with("61") {
        exact(Tz::America__Punta_Arenas)
    } else {
        exact(Tz::America__Santiago)
    }
}

/// Spain: the Canary Islands are an hour behind the peninsula; their
/// landlines have codes of their own, their mobiles do not.
fn spain(national: &str) -> ZoneGuess {
    let canary = ["922", "928", "822", "828"];
    if canary.iter().any(|code| national.starts_with(code)) {
        exact(Tz::Atlantic__Canary)
    } else if national.starts_with('6') || national.starts_with('7') {
        // Over two million people live on the islands: too many to ignore.
        either(&[Tz::Europe__Madrid, Tz::Atlantic__Canary])
    } else {
        exact(Tz::Europe__Madrid)
    }
}

/// Portugal: the Azores are an hour behind the mainland and Madeira; mobiles
/// (9) do not say which.
fn portugal(national: &str) -> ZoneGuess {
    let azores = ["292", "295", "296"];
    if azores.iter().any(|code| national.starts_with(code)) {
        exact(Tz::Atlantic__Azores)
    } else if national.starts_with("291") {
        exact(Tz::Atlantic__Madeira)
    } else if national.starts_with('9') {
        either(&[Tz::Europe__Lisbon, Tz::Atlantic__Azores])
    } else {
        exact(Tz::Europe__Lisbon)
    }
}

/// Indonesia: western (WIB), central (WITA) and eastern (WIT) time by the
/// landline area code; mobiles (8) may be in any.
fn indonesia(national: &str) -> ZoneGuess {
    use Tz::{Asia__Jakarta as WIB, Asia__Jayapura as WIT, Asia__Makassar as WITA};
    let has = |prefix: &str| national.starts_with(prefix);
    if has("36") || has("37") || has("38") || has("4") || has("54") || has("55") {
        // Bali and Nusa Tenggara; Sulawesi; East and North Kalimantan.
        exact(WITA)
    } else if has("56") || has("2") || has("3") || has("6") || has("7") {
        // Java, Sumatra, West Kalimantan.
        exact(WIB)
    } else if has("5") {
        // Central and South Kalimantan straddle WIB and WITA.
        either(&[WIB, WITA])
    } else if has("9") {
        // Maluku and Papua.
        exact(WIT)
    } else if has("8") {
        either(&[WIB, WITA, WIT])
    } else {
        ZoneGuess::Unknown
    }
}

/// Mexico: since 2022 most of the country keeps UTC-6 all year; the
/// north-west, Quintana Roo and the US border keep other clocks. Area codes
/// are two digits for Mexico City, Guadalajara and Monterrey, three
/// elsewhere, for landlines and mobiles alike.
fn mexico(national: &str) -> ZoneGuess {
    use Tz::{
        America__Chihuahua as CHIHUAHUA, America__Ciudad_Juarez as CIUDAD_JUAREZ,
        America__Hermosillo as HERMOSILLO, America__Mazatlan as MAZATLAN,
        America__Mexico_City as MEXICO_CITY, America__Monterrey as MONTERREY,
        America__Tijuana as TIJUANA,
    };
    let Some(code) = national.get(..3).and_then(|c| c.parse::<u16>().ok()) else {
        return ZoneGuess::Unknown;
    };
    let zone = match code {
        550..=569 | 330..=339 => MEXICO_CITY,
        810..=819 => MONTERREY,
        // Baja California follows the US Pacific clock.
        616 | 646 | 658 | 661 | 664 | 665 | 686 => TIJUANA,
        // Sonora: UTC-7 all year.
        622 | 631 | 633 | 637 | 638 | 642 | 644 | 645 | 653 | 662 => HERMOSILLO,
        // Sinaloa, Baja California Sur, Nayarit (UTC-7).
        612
        | 613
        | 615
        | 624
        | 667..=669
        | 672
        | 673
        | 687
        | 694..=698
        | 311
        | 319
        | 323..=325
        | 327
        | 389 => MAZATLAN,
        // Chihuahua: Ciudad Juárez follows El Paso; Ojinaga the US Central
        // clock; the rest UTC-6.
        656 | 657 => CIUDAD_JUAREZ,
        626 => Tz::America__Ojinaga,
        614 | 625 | 627..=629 | 635 | 636 | 639 | 648 | 649 => CHIHUAHUA,
        // Durango.
        618 | 671 | 674..=677 => MONTERREY,
        // Other north-western codes: any of the region's clocks.
        600..=699 => return either(&[HERMOSILLO, TIJUANA, CHIHUAHUA, CIUDAD_JUAREZ, MONTERREY]),
        // Nayarit's neighbours on 31x–32x are Jalisco and Colima (UTC-6),
        // except unlisted Nayarit codes.
        310..=329 if !matches!(code, 312..=318 | 321 | 322 | 326 | 329) => {
            return either(&[MEXICO_CITY, MAZATLAN])
        }
        // Tamaulipas and Coahuila border cities follow the US Central clock.
        867 | 868 | 877 | 878 | 899 => Tz::America__Matamoros,
        800..=899 => MONTERREY,
        // Quintana Roo: UTC-5 all year.
        983 | 984 | 987 | 998 => Tz::America__Cancun,
        200..=599 | 700..=799 | 900..=999 => MEXICO_CITY,
        _ => return ZoneGuess::Unknown,
    };
    exact(zone)
}

/// Russia: eleven clocks. Landline area codes of the main regions are
/// mapped; mobiles (9) and anything else may be anywhere.
fn russia(national: &str) -> ZoneGuess {
    let Some(code) = national.get(..3).and_then(|c| c.parse::<u16>().ok()) else {
        return ZoneGuess::Unknown;
    };
    let zone = match code {
        401 => Tz::Europe__Kaliningrad,
        495..=499 | 812 | 813 | 831 | 843 | 861..=863 | 473 => Tz::Europe__Moscow,
        844 => Tz::Europe__Volgograd,
        845 => Tz::Europe__Saratov,
        842 => Tz::Europe__Ulyanovsk,
        851 => Tz::Europe__Astrakhan,
        846 | 848 | 341 => Tz::Europe__Samara,
        343 | 342 | 345 | 347 | 351 | 353 => Tz::Asia__Yekaterinburg,
        381 => Tz::Asia__Omsk,
        383 => Tz::Asia__Novosibirsk,
        382 => Tz::Asia__Tomsk,
        384 => Tz::Asia__Novokuznetsk,
        385 => Tz::Asia__Barnaul,
        391 => Tz::Asia__Krasnoyarsk,
        395 | 301 => Tz::Asia__Irkutsk,
        302 => Tz::Asia__Chita,
        416 => Tz::Asia__Yakutsk,
        421 | 423 => Tz::Asia__Vladivostok,
        424 => Tz::Asia__Sakhalin,
        413 => Tz::Asia__Magadan,
        415 => Tz::Asia__Kamchatka,
        427 => Tz::Asia__Anadyr,
        _ => {
            return either(&[
                Tz::Europe__Moscow,
                Tz::Europe__Kaliningrad,
                Tz::Europe__Samara,
                Tz::Asia__Yekaterinburg,
                Tz::Asia__Omsk,
                Tz::Asia__Krasnoyarsk,
                Tz::Asia__Irkutsk,
                Tz::Asia__Yakutsk,
                Tz::Asia__Vladivostok,
                Tz::Asia__Magadan,
                Tz::Asia__Kamchatka,
            ])
        }
    };
    exact(zone)
}

/// Countries (ISO 3166 alpha-2, sorted; a test keeps it so) whose numbers
/// carry no finer clue than the country, with their zones as IANA's
/// `zone.tab` names them. One zone: everyone keeps that clock (Chinese
/// numbers in Xinjiang keep Beijing's official time; New Zealand's Chatham
/// Islands and Ecuador's Galápagos are ignored). Several: the country spans
/// clocks and its numbers do not say where.
static COUNTRIES: &[(&str, &[Tz])] = &[
    ("AD", &[Tz::Europe__Andorra]),
    ("AE", &[Tz::Asia__Dubai]),
    ("AF", &[Tz::Asia__Kabul]),
    ("AL", &[Tz::Europe__Tirane]),
    ("AM", &[Tz::Asia__Yerevan]),
    ("AO", &[Tz::Africa__Luanda]),
    ("AR", &[Tz::America__Argentina__Buenos_Aires]),
    ("AT", &[Tz::Europe__Vienna]),
    ("AW", &[Tz::America__Aruba]),
    ("AX", &[Tz::Europe__Mariehamn]),
    ("AZ", &[Tz::Asia__Baku]),
    ("BA", &[Tz::Europe__Sarajevo]),
    ("BD", &[Tz::Asia__Dhaka]),
    ("BE", &[Tz::Europe__Brussels]),
    ("BF", &[Tz::Africa__Ouagadougou]),
    ("BG", &[Tz::Europe__Sofia]),
    ("BH", &[Tz::Asia__Bahrain]),
    ("BI", &[Tz::Africa__Bujumbura]),
    ("BJ", &[Tz::Africa__PortoNovo]),
    ("BL", &[Tz::America__St_Barthelemy]),
    ("BN", &[Tz::Asia__Brunei]),
    ("BO", &[Tz::America__La_Paz]),
    ("BQ", &[Tz::America__Kralendijk]),
    ("BT", &[Tz::Asia__Thimphu]),
    ("BW", &[Tz::Africa__Gaborone]),
    ("BY", &[Tz::Europe__Minsk]),
    ("BZ", &[Tz::America__Belize]),
    ("CC", &[Tz::Indian__Cocos]),
    ("CD", &[Tz::Africa__Kinshasa, Tz::Africa__Lubumbashi]),
    ("CF", &[Tz::Africa__Bangui]),
    ("CG", &[Tz::Africa__Brazzaville]),
    ("CH", &[Tz::Europe__Zurich]),
    ("CI", &[Tz::Africa__Abidjan]),
    ("CK", &[Tz::Pacific__Rarotonga]),
    ("CM", &[Tz::Africa__Douala]),
    ("CN", &[Tz::Asia__Shanghai]),
    ("CO", &[Tz::America__Bogota]),
    ("CR", &[Tz::America__Costa_Rica]),
    ("CU", &[Tz::America__Havana]),
    ("CV", &[Tz::Atlantic__Cape_Verde]),
    ("CW", &[Tz::America__Curacao]),
    ("CX", &[Tz::Indian__Christmas]),
    ("CY", &[Tz::Asia__Nicosia]),
    ("CZ", &[Tz::Europe__Prague]),
    ("DE", &[Tz::Europe__Berlin]),
    ("DJ", &[Tz::Africa__Djibouti]),
    ("DK", &[Tz::Europe__Copenhagen]),
    ("DZ", &[Tz::Africa__Algiers]),
    ("EC", &[Tz::America__Guayaquil]),
    ("EE", &[Tz::Europe__Tallinn]),
    ("EG", &[Tz::Africa__Cairo]),
    ("EH", &[Tz::Africa__El_Aaiun]),
    ("ER", &[Tz::Africa__Asmara]),
    ("ET", &[Tz::Africa__Addis_Ababa]),
    ("FI", &[Tz::Europe__Helsinki]),
    ("FJ", &[Tz::Pacific__Fiji]),
    ("FK", &[Tz::Atlantic__Stanley]),
    ("FM", &[Tz::Pacific__Pohnpei, Tz::Pacific__Chuuk]),
    ("FO", &[Tz::Atlantic__Faroe]),
    ("FR", &[Tz::Europe__Paris]),
    ("GA", &[Tz::Africa__Libreville]),
    ("GB", &[Tz::Europe__London]),
    ("GE", &[Tz::Asia__Tbilisi]),
    ("GF", &[Tz::America__Cayenne]),
    ("GG", &[Tz::Europe__Guernsey]),
    ("GH", &[Tz::Africa__Accra]),
    ("GI", &[Tz::Europe__Gibraltar]),
    (
        "GL",
        &[
            Tz::America__Nuuk,
            Tz::America__Scoresbysund,
            Tz::America__Danmarkshavn,
            Tz::America__Thule,
        ],
    ),
    ("GM", &[Tz::Africa__Banjul]),
    ("GN", &[Tz::Africa__Conakry]),
    ("GP", &[Tz::America__Guadeloupe]),
    ("GQ", &[Tz::Africa__Malabo]),
    ("GR", &[Tz::Europe__Athens]),
    ("GT", &[Tz::America__Guatemala]),
    ("GW", &[Tz::Africa__Bissau]),
    ("GY", &[Tz::America__Guyana]),
    ("HK", &[Tz::Asia__Hong_Kong]),
    ("HN", &[Tz::America__Tegucigalpa]),
    ("HR", &[Tz::Europe__Zagreb]),
    ("HT", &[Tz::America__PortauPrince]),
    ("HU", &[Tz::Europe__Budapest]),
    ("IE", &[Tz::Europe__Dublin]),
    ("IL", &[Tz::Asia__Jerusalem]),
    ("IM", &[Tz::Europe__Isle_of_Man]),
    ("IN", &[Tz::Asia__Kolkata]),
    ("IO", &[Tz::Indian__Chagos]),
    ("IQ", &[Tz::Asia__Baghdad]),
    ("IR", &[Tz::Asia__Tehran]),
    ("IS", &[Tz::Atlantic__Reykjavik]),
    ("IT", &[Tz::Europe__Rome]),
    ("JE", &[Tz::Europe__Jersey]),
    ("JO", &[Tz::Asia__Amman]),
    ("JP", &[Tz::Asia__Tokyo]),
    ("KE", &[Tz::Africa__Nairobi]),
    ("KG", &[Tz::Asia__Bishkek]),
    ("KH", &[Tz::Asia__Phnom_Penh]),
    (
        "KI",
        &[
            Tz::Pacific__Tarawa,
            Tz::Pacific__Kanton,
            Tz::Pacific__Kiritimati,
        ],
    ),
    ("KM", &[Tz::Indian__Comoro]),
    ("KP", &[Tz::Asia__Pyongyang]),
    ("KR", &[Tz::Asia__Seoul]),
    ("KW", &[Tz::Asia__Kuwait]),
    ("KZ", &[Tz::Asia__Almaty]),
    ("LA", &[Tz::Asia__Vientiane]),
    ("LB", &[Tz::Asia__Beirut]),
    ("LI", &[Tz::Europe__Vaduz]),
    ("LK", &[Tz::Asia__Colombo]),
    ("LR", &[Tz::Africa__Monrovia]),
    ("LS", &[Tz::Africa__Maseru]),
    ("LT", &[Tz::Europe__Vilnius]),
    ("LU", &[Tz::Europe__Luxembourg]),
    ("LV", &[Tz::Europe__Riga]),
    ("LY", &[Tz::Africa__Tripoli]),
    ("MA", &[Tz::Africa__Casablanca]),
    ("MC", &[Tz::Europe__Monaco]),
    ("MD", &[Tz::Europe__Chisinau]),
    ("ME", &[Tz::Europe__Podgorica]),
    ("MF", &[Tz::America__Marigot]),
    ("MG", &[Tz::Indian__Antananarivo]),
    ("MH", &[Tz::Pacific__Majuro]),
    ("MK", &[Tz::Europe__Skopje]),
    ("ML", &[Tz::Africa__Bamako]),
    ("MM", &[Tz::Asia__Yangon]),
    ("MN", &[Tz::Asia__Ulaanbaatar, Tz::Asia__Hovd]),
    ("MO", &[Tz::Asia__Macau]),
    ("MQ", &[Tz::America__Martinique]),
    ("MR", &[Tz::Africa__Nouakchott]),
    ("MT", &[Tz::Europe__Malta]),
    ("MU", &[Tz::Indian__Mauritius]),
    ("MV", &[Tz::Indian__Maldives]),
    ("MW", &[Tz::Africa__Blantyre]),
    ("MY", &[Tz::Asia__Kuala_Lumpur]),
    ("MZ", &[Tz::Africa__Maputo]),
    ("NA", &[Tz::Africa__Windhoek]),
    ("NC", &[Tz::Pacific__Noumea]),
    ("NE", &[Tz::Africa__Niamey]),
    ("NF", &[Tz::Pacific__Norfolk]),
    ("NG", &[Tz::Africa__Lagos]),
    ("NI", &[Tz::America__Managua]),
    ("NL", &[Tz::Europe__Amsterdam]),
    ("NO", &[Tz::Europe__Oslo]),
    ("NP", &[Tz::Asia__Kathmandu]),
    ("NR", &[Tz::Pacific__Nauru]),
    ("NU", &[Tz::Pacific__Niue]),
    ("NZ", &[Tz::Pacific__Auckland]),
    ("OM", &[Tz::Asia__Muscat]),
    ("PA", &[Tz::America__Panama]),
    ("PE", &[Tz::America__Lima]),
    (
        "PF",
        &[
            Tz::Pacific__Tahiti,
            Tz::Pacific__Marquesas,
            Tz::Pacific__Gambier,
        ],
    ),
    (
        "PG",
        &[Tz::Pacific__Port_Moresby, Tz::Pacific__Bougainville],
    ),
    ("PH", &[Tz::Asia__Manila]),
    ("PK", &[Tz::Asia__Karachi]),
    ("PL", &[Tz::Europe__Warsaw]),
    ("PM", &[Tz::America__Miquelon]),
    ("PS", &[Tz::Asia__Hebron, Tz::Asia__Gaza]),
    ("PW", &[Tz::Pacific__Palau]),
    ("PY", &[Tz::America__Asuncion]),
    ("QA", &[Tz::Asia__Qatar]),
    ("RE", &[Tz::Indian__Reunion]),
    ("RO", &[Tz::Europe__Bucharest]),
    ("RS", &[Tz::Europe__Belgrade]),
    ("RW", &[Tz::Africa__Kigali]),
    ("SA", &[Tz::Asia__Riyadh]),
    ("SB", &[Tz::Pacific__Guadalcanal]),
    ("SC", &[Tz::Indian__Mahe]),
    ("SD", &[Tz::Africa__Khartoum]),
    ("SE", &[Tz::Europe__Stockholm]),
    ("SG", &[Tz::Asia__Singapore]),
    ("SH", &[Tz::Atlantic__St_Helena]),
    ("SI", &[Tz::Europe__Ljubljana]),
    ("SJ", &[Tz::Arctic__Longyearbyen]),
    ("SK", &[Tz::Europe__Bratislava]),
    ("SL", &[Tz::Africa__Freetown]),
    ("SM", &[Tz::Europe__San_Marino]),
    ("SN", &[Tz::Africa__Dakar]),
    ("SO", &[Tz::Africa__Mogadishu]),
    ("SR", &[Tz::America__Paramaribo]),
    ("SS", &[Tz::Africa__Juba]),
    ("ST", &[Tz::Africa__Sao_Tome]),
    ("SV", &[Tz::America__El_Salvador]),
    ("SY", &[Tz::Asia__Damascus]),
    ("SZ", &[Tz::Africa__Mbabane]),
    ("TD", &[Tz::Africa__Ndjamena]),
    ("TG", &[Tz::Africa__Lome]),
    ("TH", &[Tz::Asia__Bangkok]),
    ("TJ", &[Tz::Asia__Dushanbe]),
    ("TK", &[Tz::Pacific__Fakaofo]),
    ("TL", &[Tz::Asia__Dili]),
    ("TM", &[Tz::Asia__Ashgabat]),
    ("TN", &[Tz::Africa__Tunis]),
    ("TO", &[Tz::Pacific__Tongatapu]),
    ("TR", &[Tz::Europe__Istanbul]),
    ("TV", &[Tz::Pacific__Funafuti]),
    ("TW", &[Tz::Asia__Taipei]),
    ("TZ", &[Tz::Africa__Dar_es_Salaam]),
    ("UA", &[Tz::Europe__Kyiv]),
    ("UG", &[Tz::Africa__Kampala]),
    ("UY", &[Tz::America__Montevideo]),
    ("UZ", &[Tz::Asia__Tashkent]),
    ("VA", &[Tz::Europe__Vatican]),
    ("VE", &[Tz::America__Caracas]),
    ("VN", &[Tz::Asia__Ho_Chi_Minh]),
    ("VU", &[Tz::Pacific__Efate]),
    ("WF", &[Tz::Pacific__Wallis]),
    ("WS", &[Tz::Pacific__Apia]),
    ("XK", &[Tz::Europe__Belgrade]),
    ("YE", &[Tz::Asia__Aden]),
    ("YT", &[Tz::Indian__Mayotte]),
    ("ZA", &[Tz::Africa__Johannesburg]),
    ("ZM", &[Tz::Africa__Lusaka]),
    ("ZW", &[Tz::Africa__Harare]),
];

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::{NaiveTime, TimeZone};

    use super::*;

    /// (number, zones expected: primary first; none = unknown).
    const CASES: &[(&str, &[&str])] = &[
        // United States, one per clock, and codes that straddle a line.
        ("+1 212 736 5000", &["America/New_York"]),
        ("+1 312 744 3000", &["America/Chicago"]),
        ("+1 303 739 5000", &["America/Denver"]),
        ("+1 602 506 2000", &["America/Phoenix"]),
        ("+1 310 260 0000", &["America/Los_Angeles"]),
        ("+1 808 545 3000", &["Pacific/Honolulu"]),
        ("+1 907 264 2000", &["America/Anchorage"]),
        ("+1 317 232 2000", &["America/Indiana/Indianapolis"]),
        ("+1 313 224 2000", &["America/Detroit"]),
        ("+1 502 574 2000", &["America/Kentucky/Louisville"]),
        ("+1 915 533 2000", &["America/Denver"]),
        ("+1 850 222 2000", &["America/Chicago", "America/New_York"]),
        ("+1 208 334 2000", &["America/Boise", "America/Los_Angeles"]),
        ("+1 906 482 3000", &["America/Detroit", "America/Menominee"]),
        ("+1 928 213 2000", &["America/Phoenix", "America/Denver"]),
        ("+1 605 367 2000", &["America/Chicago", "America/Denver"]),
        ("+1 423 265 2000", &["America/New_York", "America/Chicago"]),
        ("+1 541 682 2000", &["America/Los_Angeles", "America/Boise"]),
        // Non-geographic NANP codes.
        ("+1 800 275 2273", &[]),
        ("+1 877 275 2273", &[]),
        ("+1 900 555 2000", &[]),
        // Canada.
        ("+1 604 681 2000", &["America/Vancouver"]),
        ("+1 403 268 2000", &["America/Edmonton"]),
        ("+1 416 392 2000", &["America/Toronto"]),
        ("+1 514 872 2000", &["America/Toronto"]),
        ("+1 902 424 2000", &["America/Halifax"]),
        ("+1 506 453 2000", &["America/Moncton"]),
        ("+1 709 758 2000", &["America/St_Johns", "America/Halifax"]),
        ("+1 204 986 2000", &["America/Winnipeg"]),
        ("+1 306 777 2000", &["America/Regina"]),
        (
            "+1 250 387 2000",
            &["America/Vancouver", "America/Edmonton"],
        ),
        ("+1 807 625 2000", &["America/Toronto", "America/Winnipeg"]),
        (
            "+1 867 667 2000",
            &[
                "America/Whitehorse",
                "America/Edmonton",
                "America/Rankin_Inlet",
                "America/Iqaluit",
            ],
        ),
        // Caribbean and Pacific members.
        ("+1 787 722 2000", &["America/Puerto_Rico"]),
        ("+1 939 722 2000", &["America/Puerto_Rico"]),
        ("+1 876 922 2000", &["America/Jamaica"]),
        ("+1 809 535 2000", &["America/Santo_Domingo"]),
        ("+1 242 322 2000", &["America/Nassau"]),
        ("+1 246 426 2000", &["America/Barbados"]),
        ("+1 868 623 2000", &["America/Port_of_Spain"]),
        ("+1 441 295 2000", &["Atlantic/Bermuda"]),
        ("+1 340 774 2000", &["America/St_Thomas"]),
        ("+1 671 477 2000", &["Pacific/Guam"]),
        // Europe.
        ("+44 20 7946 0018", &["Europe/London"]),
        ("+44 7400 123456", &["Europe/London"]),
        // Channel Islands mobiles share +44 but the metadata knows them.
        ("+44 7911 123456", &["Europe/Guernsey"]),
        ("+353 1 612 3456", &["Europe/Dublin"]),
        ("+33 1 42 68 53 00", &["Europe/Paris"]),
        ("+33 6 12 34 56 78", &["Europe/Paris"]),
        ("+262 262 12 34 56", &["Indian/Reunion"]),
        ("+262 692 12 34 56", &["Indian/Reunion"]),
        ("+262 269 60 12 34", &["Indian/Mayotte"]),
        ("+590 590 12 34 56", &["America/Guadeloupe"]),
        ("+596 596 30 12 34", &["America/Martinique"]),
        ("+594 594 12 34 56", &["America/Cayenne"]),
        ("+34 912 345 678", &["Europe/Madrid"]),
        ("+34 922 123 456", &["Atlantic/Canary"]),
        ("+34 928 123 456", &["Atlantic/Canary"]),
        ("+34 612 345 678", &["Europe/Madrid", "Atlantic/Canary"]),
        ("+351 213 456 789", &["Europe/Lisbon"]),
        ("+351 296 123 456", &["Atlantic/Azores"]),
        ("+351 291 123 456", &["Atlantic/Madeira"]),
        ("+351 912 345 678", &["Europe/Lisbon", "Atlantic/Azores"]),
        ("+49 30 12345678", &["Europe/Berlin"]),
        ("+49 151 23456789", &["Europe/Berlin"]),
        ("+39 06 1234 5678", &["Europe/Rome"]),
        ("+41 44 123 45 67", &["Europe/Zurich"]),
        ("+31 20 123 4567", &["Europe/Amsterdam"]),
        ("+7 495 123 4567", &["Europe/Moscow"]),
        ("+7 343 212 3456", &["Asia/Yekaterinburg"]),
        ("+7 7172 123 456", &["Asia/Almaty"]),
        // Asia and the Middle East.
        ("+91 98765 43210", &["Asia/Kolkata"]),
        ("+91 11 2345 6789", &["Asia/Kolkata"]),
        ("+81 3 1234 5678", &["Asia/Tokyo"]),
        ("+81 90 1234 5678", &["Asia/Tokyo"]),
        ("+82 2 123 4567", &["Asia/Seoul"]),
        ("+86 138 1234 5678", &["Asia/Shanghai"]),
        ("+65 6123 4567", &["Asia/Singapore"]),
        ("+852 2123 4567", &["Asia/Hong_Kong"]),
        ("+971 4 345 6789", &["Asia/Dubai"]),
        ("+972 2 561 2345", &["Asia/Jerusalem"]),
        ("+62 21 1234 5678", &["Asia/Jakarta"]),
        ("+62 361 123456", &["Asia/Makassar"]),
        // Oceania.
        ("+61 2 9234 5678", &["Australia/Sydney"]),
        ("+61 3 9234 5678", &["Australia/Melbourne"]),
        ("+61 3 6234 5678", &["Australia/Hobart"]),
        ("+61 7 3234 5678", &["Australia/Brisbane"]),
        ("+61 8 8234 5678", &["Australia/Adelaide"]),
        ("+61 8 8981 2345", &["Australia/Darwin"]),
        ("+61 8 9345 6789", &["Australia/Perth"]),
        (
            "+61 412 345 678",
            &[
                "Australia/Sydney",
                "Australia/Brisbane",
                "Australia/Adelaide",
                "Australia/Darwin",
                "Australia/Perth",
            ],
        ),
        ("+64 9 302 1234", &["Pacific/Auckland"]),
        ("+64 21 123 4567", &["Pacific/Auckland"]),
        // Americas.
        ("+55 11 2345 6789", &["America/Sao_Paulo"]),
        ("+55 11 91234 5678", &["America/Sao_Paulo"]),
        ("+55 92 3234 5678", &["America/Manaus"]),
        ("+55 68 3234 5678", &["America/Rio_Branco"]),
        ("+55 71 91234 5678", &["America/Bahia"]),
        ("+55 97 91234 5678", &["America/Manaus", "America/Eirunepe"]),
        ("+52 55 1234 5678", &["America/Mexico_City"]),
        ("+52 664 123 4567", &["America/Tijuana"]),
        ("+52 998 123 4567", &["America/Cancun"]),
        ("+52 662 123 4567", &["America/Hermosillo"]),
        ("+52 656 123 4567", &["America/Ciudad_Juarez"]),
        ("+52 81 1234 5678", &["America/Monterrey"]),
        ("+56 2 2123 4567", &["America/Santiago"]),
        ("+56 61 221 2345", &["America/Punta_Arenas"]),
        ("+54 11 4321 1234", &["America/Argentina/Buenos_Aires"]),
        ("+57 601 123 4567", &["America/Bogota"]),
        // Africa.
        ("+27 21 123 4567", &["Africa/Johannesburg"]),
        ("+20 2 2791 2345", &["Africa/Cairo"]),
        ("+234 803 123 4567", &["Africa/Lagos"]),
        ("+254 712 345678", &["Africa/Nairobi"]),
        (
            "+243 81 234 5678",
            &["Africa/Kinshasa", "Africa/Lubumbashi"],
        ),
        // International freephone: no country at all.
        ("+800 1234 5678", &[]),
    ];

    fn number(text: &str) -> E164 {
        match E164::parse(text, None) {
            Ok(number) => number,
            Err(e) => panic!("test number {text}: {e}"),
        }
    }

    fn names(zones: &[Tz]) -> Vec<&'static str> {
        zones.iter().map(|zone| zone.name()).collect()
    }

    #[test]
    fn numbers_guess_their_zones() {
        let mut failures = Vec::new();
        for &(text, expected) in CASES {
            let parsed = match E164::parse(text, None) {
                Ok(number) => number,
                Err(e) => {
                    failures.push(format!("{text}: {e}"));
                    continue;
                }
            };
            let guess = callee_zone(&parsed);
            let got = names(guess.candidate_zones());
            let shape_ok = match &guess {
                ZoneGuess::Exact(_) => expected.len() == 1,
                ZoneGuess::Ambiguous { zones } => zones.len() >= 2,
                ZoneGuess::Unknown => expected.is_empty(),
            };
            if got != expected || !shape_ok {
                failures.push(format!("{text}: expected {expected:?}, got {guess:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(CASES.len() >= 60);
    }

    #[test]
    fn nanp_table_is_sorted_unique_and_every_code_is_dialable() {
        let codes: Vec<u16> = nanp::AREA_CODES.iter().map(|&(code, _)| code).collect();
        assert!(
            codes.windows(2).all(|w| w[0] < w[1]),
            "unsorted or repeated"
        );
        for &(code, zones) in nanp::AREA_CODES {
            assert!((200..1000).contains(&code), "{code}");
            assert!(!zones.is_empty(), "{code} has no zone");
            let mut seen = zones.to_vec();
            seen.dedup();
            assert_eq!(seen.len(), zones.len(), "{code} repeats a zone");
            // Some exchange in every geographic code is a valid number.
            let valid = (200..1000)
                .step_by(7)
                .any(|exchange| E164::parse(&format!("+1{code}{exchange}2000"), None).is_ok());
            assert!(valid, "no valid number found in area code {code}");
            // A real zone name, round-tripping through the IANA database.
            for zone in zones {
                assert_eq!(Tz::from_str(zone.name()).ok(), Some(*zone));
            }
        }
        for code in nanp::NON_GEOGRAPHIC {
            assert_eq!(nanp::zones(*code), None, "{code} is not geographic");
        }
    }

    #[test]
    fn country_table_is_sorted_unique_and_names_real_regions() {
        let codes: Vec<&str> = COUNTRIES.iter().map(|&(code, _)| code).collect();
        assert!(
            codes.windows(2).all(|w| w[0] < w[1]),
            "unsorted or repeated"
        );
        for &(code, zones) in COUNTRIES {
            assert!(code.parse::<super::super::Region>().is_ok(), "{code}");
            assert!(!zones.is_empty(), "{code} has no zone");
            for zone in zones {
                assert_eq!(Tz::from_str(zone.name()).ok(), Some(*zone));
            }
        }
        // Countries handled by their own rules must not hide in the table.
        for special in ["AU", "BR", "CL", "ES", "ID", "MX", "PT", "RU", "US", "CA"] {
            assert!(country_zones(special).is_none(), "{special}");
        }
    }

    #[test]
    fn candidates_are_never_empty_for_a_known_guess() {
        for &(text, _) in CASES {
            let guess = callee_zone(&number(text));
            match &guess {
                ZoneGuess::Exact(_) | ZoneGuess::Ambiguous { .. } => {
                    assert!(!guess.candidate_zones().is_empty(), "{text}");
                    assert_eq!(guess.primary(), guess.candidate_zones().first().copied());
                }
                ZoneGuess::Unknown => assert!(guess.candidate_zones().is_empty()),
            }
        }
        let nanp_zones = nanp::AREA_CODES.iter().map(|&(_, zones)| zones);
        let country_zones = COUNTRIES.iter().map(|&(_, zones)| zones);
        for zones in nanp_zones.chain(country_zones) {
            assert!(!ZoneGuess::from_zones(zones).candidate_zones().is_empty());
        }
    }

    #[test]
    fn fallbacks() {
        let paris = Tz::Europe__Paris;
        assert_eq!(ZoneGuess::Unknown.zone_or(paris), paris);
        assert_eq!(ZoneGuess::Unknown.zones_or(paris), vec![paris]);
        let panhandle = callee_zone(&number("+1 850 222 2000"));
        assert_eq!(panhandle.zone_or(paris), Tz::America__Chicago);
        assert_eq!(
            panhandle.zones_or(paris),
            vec![Tz::America__Chicago, Tz::America__New_York]
        );
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        match NaiveTime::from_hms_opt(h, m, 0) {
            Some(t) => t,
            None => panic!("bad time {h}:{m}"),
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        match Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single() {
            Some(t) => t,
            None => panic!("bad instant"),
        }
    }

    #[test]
    fn ambiguous_numbers_must_be_inside_hours_in_every_zone() {
        let hours = CallingHours::default(); // 08:00–21:00
        let panhandle = callee_zone(&number("+1 850 222 2000"));
        let paris = Tz::Europe__Paris;
        // 12:30 UTC in January: 07:30 Central, 08:30 Eastern.
        let early = utc(2025, 1, 15, 13, 30);
        assert!(hours.contains(early, Tz::America__New_York));
        assert!(!panhandle.within_hours(&hours, early, paris));
        // The window opens when Central time reaches 08:00.
        assert_eq!(
            panhandle.next_allowed(&hours, early, paris),
            Some(utc(2025, 1, 15, 14, 0))
        );
        // 01:30 UTC: 19:30 Central but 20:30 Eastern, both inside.
        let evening = utc(2025, 1, 16, 1, 30);
        assert!(panhandle.within_hours(&hours, evening, paris));
        // 02:30 UTC: 21:30 Eastern, outside; next is 08:00 Central.
        let late = utc(2025, 1, 16, 2, 30);
        assert!(!panhandle.within_hours(&hours, late, paris));
        assert_eq!(
            panhandle.next_allowed(&hours, late, paris),
            Some(utc(2025, 1, 16, 14, 0))
        );
        // Unknown numbers use the fallback alone.
        let unknown = callee_zone(&number("+800 1234 5678"));
        assert_eq!(
            unknown.next_allowed(&hours, utc(2025, 1, 15, 6, 0), paris),
            Some(utc(2025, 1, 15, 7, 0))
        );
    }

    #[test]
    fn zones_whose_windows_never_meet_give_no_instant() {
        let narrow = match CallingHours::new(hm(9, 0), hm(10, 0)) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        };
        let far_apart = ZoneGuess::Ambiguous {
            zones: vec![Tz::Europe__London, Tz::Asia__Tokyo],
        };
        let at = utc(2025, 1, 15, 0, 0);
        assert_eq!(far_apart.next_allowed(&narrow, at, Tz::UTC), None);
        assert!(!far_apart.within_hours(&narrow, utc(2025, 1, 15, 9, 30), Tz::UTC));
    }
}
