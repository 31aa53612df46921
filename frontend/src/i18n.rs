//! The app's words in Portuguese (the default: the seeds' users are Brazilian banks) and English.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Pt,
    En,
}

/// (key, pt-BR, en)
const WORDS: &[(&str, &str, &str)] = &[
    ("bank", "Banco", "Bank"),
    ("choose_bank", "Escolha seu banco", "Choose your bank"),
    ("custom_address", "Outro endereço", "Other address"),
    ("continue", "Continuar", "Continue"),
    ("sign_up", "Abrir conta", "Open an account"),
    ("log_in", "Entrar", "Log in"),
    ("log_out", "Sair", "Log out"),
    ("name", "Nome", "Name"),
    ("documents", "CPF ou CNPJ", "CPF or CNPJ"),
    ("type", "Tipo de conta", "Account type"),
    ("individual", "Pessoa física", "Individual"),
    ("legal", "Pessoa jurídica", "Company"),
    ("password", "Senha", "Password"),
    ("ibk", "IBK (banco-conta)", "IBK (bank-account)"),
    ("account_opened", "Conta aberta: ", "Account opened: "),
    ("balance", "Saldo", "Balance"),
    ("amount", "Valor (R$)", "Amount (R$)"),
    ("deposit", "Depositar", "Deposit"),
    ("withdraw", "Sacar", "Withdraw"),
    ("transfer", "Transferir", "Transfer"),
    ("from", "De", "From"),
    ("to", "Para (IBK ou chave Pix)", "To (IBK or Pix key)"),
    ("add_operation", "Adicionar operação", "Add operation"),
    ("send_package", "Enviar pacote", "Send package"),
    ("resolve", "Conferir destinatário", "Check recipient"),
    ("my_accounts", "Minhas contas", "My accounts"),
    ("pix_keys", "Minhas chaves Pix", "My Pix keys"),
    ("add_key", "Cadastrar chave", "Add key"),
    ("remove", "Remover", "Remove"),
    ("statement", "Extrato", "Statement"),
    ("status", "Situação", "Status"),
    ("pending", "pendente", "pending"),
    ("confirmed", "confirmado", "confirmed"),
    ("success", "concluído", "completed"),
    ("failed", "falhou", "failed"),
    ("language", "English", "Português"),
    ("err_amount", "Valor inválido: use o formato 1.234,56", "Invalid amount: use the format 1.234,56"),
    ("err_document", "Documento inválido: ", "Invalid document: "),
    ("err_ibk", "IBK inválido: use banco-conta, ex.: 1-42", "Invalid IBK: use bank-account, e.g. 1-42"),
    ("err_key", "Chave Pix inválida para este tipo", "Not a valid Pix key of this type"),
    (
        "err_to",
        "Destino inválido: informe um IBK (ex.: 2-7) ou uma chave Pix",
        "Invalid target: an IBK (e.g. 2-7) or a Pix key",
    ),
    ("sent", "Pacote enviado: ", "Package sent: "),
    ("random", "aleatória", "random"),
    ("key", "Chave", "Key"),
    ("key_type", "Tipo de chave", "Key type"),
    ("waiting_for", "Aguardando confirmação de", "Waiting for"),
    ("confirm_joint", "Confirmar conta conjunta", "Confirm joint account"),
    ("open_joint", "Abrir conta conjunta", "Open a joint account"),
    ("other_holders", "CPF dos outros titulares (separe com vírgula)", "Other holders' CPF (comma-separated)"),
    ("consents", "Autorizações para outros bancos", "Authorisations for other banks"),
    ("consent_active", "ativa", "active"),
    ("consent_revoked", "revogada", "revoked"),
    ("consent_expired", "expirada", "expired"),
    ("revoke", "Revogar", "Revoke"),
    ("link_account", "Vincular conta de outro banco", "Link an account at another bank"),
    ("consent_total", "Limite total (R$)", "Total limit (R$)"),
    ("linked", "Conta vinculada:", "Account linked:"),
];

pub fn t(lang: Lang, key: &str) -> &'static str {
    WORDS.iter().find(|(k, _, _)| *k == key).map_or("?", |(_, pt, en)| if lang == Lang::Pt { pt } else { en })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_exists_in_both_languages_once() {
        for (i, (k, pt, en)) in WORDS.iter().enumerate() {
            assert!(!pt.is_empty() && !en.is_empty(), "{k}");
            assert!(WORDS[i + 1..].iter().all(|(o, _, _)| o != k), "{k} twice");
        }
        assert_eq!(t(Lang::Pt, "deposit"), "Depositar");
        assert_eq!(t(Lang::En, "deposit"), "Deposit");
    }
}
