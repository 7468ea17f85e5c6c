//! Users, aliases and forwards that clash or lead nowhere are mistakes at load, with their
//! lines: before, a second `alice` silently replaced the first one's password, and a typo in
//! one alias member made every message to the alias bounce with 550, also for alice and bob.

use postroom_config::{Config, Mistake};

fn mistakes(text: &str) -> Vec<String> {
    match Config::from_toml(text) {
        Ok(_) => panic!("expected mistakes in:\n{text}"),
        Err(found) => found.iter().map(Mistake::to_string).collect(),
    }
}

const DOMAINS: &str = "[mail]\ndomains = [\"office.example\", \"branch.example\"]\n";

#[test]
fn a_second_user_of_the_same_name_is_a_mistake_whatever_its_case() {
    let text = format!(
        "{DOMAINS}[[mail.users]]\nname = \"alice\"\n[[mail.users]]\nname = \"bob\"\n\
         [[mail.users]]\nname = \"alice\"\n"
    );
    let found = mistakes(&text);
    assert_eq!(
        found,
        ["line 8: mail.users[2].name: \"alice\" is already the name of mail.users[0]"]
    );
}

#[test]
fn an_alias_member_that_names_nobody_is_a_mistake_on_its_line() {
    let text = format!(
        "{DOMAINS}[[mail.users]]\nname = \"alice\"\n[[mail.users]]\nname = \"bob\"\n\
         [[mail.aliases]]\nname = \"office\"\nmembers = [\"alice\", \"bobb\"]\n"
    );
    let found = mistakes(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("line 9: mail.aliases[0].members[1]: \"bobb\" names no user"),
        "{found:?}"
    );
}

#[test]
fn a_forward_to_a_missing_local_address_is_a_mistake_and_an_outside_one_is_not() {
    let text = format!(
        "{DOMAINS}[[mail.users]]\nname = \"alice\"\n\
         forward = [\"alice@home.example\", \"nobody@office.example\"]\nkeep_copy = true\n"
    );
    let found = mistakes(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("line 5: mail.users[0].forward[1]: \"nobody@office.example\""),
        "{found:?}"
    );
}

#[test]
fn an_alias_that_shares_a_user_name_or_another_alias_name_is_a_mistake() {
    let text = format!(
        "{DOMAINS}[[mail.users]]\nname = \"alice\"\n\
         [[mail.aliases]]\nname = \"Alice\"\nmembers = [\"postmaster\"]\n\
         [[mail.aliases]]\nname = \"team\"\nmembers = [\"alice\"]\n\
         [[mail.aliases]]\nname = \"team\"\nmembers = []\n"
    );
    let found = mistakes(&text);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].contains("aliases[0].name: \"Alice\" is also the name of mail.users[0]"));
    assert!(found[1].contains("aliases[2].name: \"team\" is already the name of mail.aliases[1]"));
    assert!(
        found[2].contains("aliases[2].members: is empty"),
        "{found:?}"
    );
}

#[test]
fn members_that_resolve_through_aliases_remote_users_and_catch_alls_are_accepted() {
    let text = format!(
        "{DOMAINS}[[mail.users]]\nname = \"alice\"\n\
         [[mail.aliases]]\nname = \"sales\"\nmembers = [\"alice@office.example\", \"info\"]\n\
         [[mail.aliases]]\nname = \"info@office.example\"\nmembers = [\"alice\", \"carol\"]\n\
         [[mail.aliases]]\nname = \"abuse\"\nmembers = [\"postmaster\", \"x@elsewhere.example\"]\n\
         [[mail.remote_users]]\nname = \"carol\"\nmailbox = \"carol@isp.example\"\n\
         [[mail.aliases]]\nname = \"all\"\nmembers = [\"whoever@branch.example\"]\n\
         [mail.catch_all]\n\"branch.example\" = \"alice\"\n"
    );
    if let Err(found) = Config::from_toml(&text) {
        panic!("unexpected mistakes: {found:?}");
    }
}
