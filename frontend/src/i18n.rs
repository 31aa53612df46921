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
    ("sent", "Pacote enviado. Acompanhe a situação no extrato: ", "Package sent. Follow its status in the statement: "),
    ("kind_deposit", "Depósito", "Deposit"),
    ("hello", "Olá", "Hello"),
    ("err_unexpected", "Resposta inesperada do banco. Tente de novo", "Unexpected answer from the bank. Try again"),
    ("err_name", "Informe o nome do titular", "Enter the holder's name"),
    ("retry_at", "Muitas tentativas. Tente de novo às", "Too many attempts. Try again at"),
    ("console", "Console do operador", "Operator console"),
    ("replica_address", "Endereço da réplica", "Replica address"),
    ("operator_key", "Chave de operador", "Operator key"),
    ("ring", "Anel do token", "Token ring"),
    ("holder", "Com o token:", "Holding the token:"),
    ("epoch", "época", "epoch"),
    ("pass", "passagem", "pass"),
    ("settlement", "Liquidação", "Settlement"),
    ("queued", "Na fila", "Queued"),
    ("in_doubt", "Em dúvida", "In doubt"),
    ("undelivered", "Decisões a entregar", "Decisions to deliver"),
    ("settled_total", "Pacotes liquidados", "Packages settled"),
    ("settled_rate", "Liquidados por segundo", "Settled per second"),
    ("banks_health", "Bancos", "Banks"),
    ("reachable", "no ar", "up"),
    ("unreachable", "fora do ar", "down"),
    ("positions", "Posições líquidas (linha deve à coluna)", "Net positions (row owes column)"),
    ("live_on", "● Atualizado em tempo real", "● Updated live"),
    ("live_off", "○ Atualizando a cada 2 segundos", "○ Updating every 2 seconds"),
    ("account", "Conta", "Account"),
    ("move_money", "Depositar ou sacar", "Deposit or withdraw"),
    ("tab_home", "Início", "Home"),
    ("tab_pay", "Pix/Transferir", "Pix/Transfer"),
    ("tab_statement", "Extrato", "Statement"),
    ("tab_keys", "Chaves", "Keys"),
    ("tab_accounts", "Contas", "Accounts"),
    ("pay_title", "Pix e transferências", "Pix and transfers"),
    ("review", "Revisar pacote", "Review package"),
    (
        "review_text",
        "Confira destinatários e valores. O pacote é tudo ou nada: se uma operação falhar, nenhuma acontece.",
        "Check the recipients and amounts. The package is all or nothing: if one operation fails, none happens.",
    ),
    ("confirm_send", "Confirmar e enviar", "Confirm and send"),
    ("back", "Voltar", "Back"),
    (
        "err_inactive",
        "Esta conta ainda não pode receber: aguarda a confirmação dos titulares",
        "This account cannot receive yet: it waits for its holders to confirm it",
    ),
    ("password_hint", "De 8 a 128 caracteres.", "8 to 128 characters."),
    ("advanced", "Avançado", "Advanced"),
    ("kind_withdrawal", "Saque", "Withdrawal"),
    ("kind_transfer_sent", "Transferência enviada", "Transfer sent"),
    ("kind_transfer_received", "Transferência recebida", "Transfer received"),
    ("kind_package_sent", "Pacote enviado", "Package sent"),
    ("kind_package_received", "Pacote recebido", "Package received"),
    ("operations", "operações", "operations"),
    ("no_entries", "Nenhuma movimentação ainda.", "No activity yet."),
    ("load_more", "Carregar mais", "Load more"),
    ("from_short", "De", "From"),
    ("to_short", "Para", "To"),
    ("receipt_id", "Identificador:", "Reference:"),
    ("random", "aleatória", "random"),
    ("key", "Chave", "Key"),
    ("key_type", "Tipo de chave", "Key type"),
    ("waiting_for", "Aguardando confirmação de", "Waiting for"),
    ("confirm_joint", "Confirmar conta conjunta", "Confirm joint account"),
    ("open_joint", "Abrir conta conjunta", "Open a joint account"),
    ("other_holders", "CPF dos outros titulares (separe com vírgula)", "Other holders' CPF (comma-separated)"),
    ("consents", "Autorizações para outros bancos", "Authorisations for other banks"),
    ("consent_state_active", "ativa", "active"),
    ("consent_state_revoked", "revogada", "revoked"),
    ("consent_state_expired", "expirada", "expired"),
    ("revoke", "Revogar", "Revoke"),
    ("link_account", "Vincular conta de outro banco", "Link an account at another bank"),
    ("consent_total", "Limite total (R$)", "Total limit (R$)"),
    ("err_network", "Sem conexão com o banco", "No connection to the bank"),
    ("total", "Total do pacote:", "Package total:"),
    ("clear", "Limpar operações", "Clear operations"),
    ("linked", "Conta vinculada:", "Account linked:"),
    ("attempt_last", "Esta foi a última tentativa antes do bloqueio", "That was the last attempt before a lockout"),
    ("attempt_one_left", "Resta 1 tentativa antes do bloqueio", "1 attempt left before a lockout"),
    ("attempts_left", "Restam {n} tentativas antes do bloqueio", "{n} attempts left before a lockout"),
    ("available", "disponível", "available"),
    ("asked", "pedido", "asked"),
];

/// What a refusal means, by its stable code, in `lang`; `None` for a code with no words here
/// (the server's message is shown then).
pub fn error_text(lang: Lang, code: shared::ErrorCode) -> Option<&'static str> {
    use shared::ErrorCode as E;
    let (pt, en) = match code {
        E::InvalidCredentials => ("IBK ou senha incorretos", "Wrong IBK or password"),
        E::RateLimited => (
            "Muitas tentativas. Aguarde alguns minutos e tente de novo",
            "Too many attempts. Wait a few minutes and try again",
        ),
        E::Unauthorized => ("Sua sessão terminou. Entre de novo", "Your session ended. Log in again"),
        E::Forbidden => ("Esta conta não é sua", "This account is not yours"),
        E::InsufficientFunds => ("Saldo insuficiente", "Insufficient funds"),
        E::ConsentMissing => (
            "O titular da conta não autorizou débitos deste banco",
            "The account's holder has not consented to debits by this bank",
        ),
        E::ConsentExpired => {
            ("A autorização de débito expirou ou foi revogada", "The debit consent expired or was revoked")
        }
        E::ConsentExceeded => {
            ("O pacote passa do limite autorizado para débitos", "The package exceeds the consented debit limit")
        }
        E::PackageDeadline => {
            ("Um banco não respondeu a tempo; nada foi debitado", "A bank did not answer in time; nothing was debited")
        }
        E::PackageAborted => {
            ("O pacote não foi concluído; nada foi debitado", "The package did not complete; nothing was debited")
        }
        E::AccountNotFound => ("Conta não encontrada ou encerrada", "No such account, or it is closed"),
        E::SameAccount => ("Origem e destino são a mesma conta", "Origin and target are the same account"),
        E::BalanceOverflow => ("O saldo passaria do máximo permitido", "The balance would pass the largest allowed"),
        E::BalanceNotZero => (
            "A conta ainda tem saldo: transfira-o antes de encerrar",
            "The account still holds money: move it before closing",
        ),
        E::AccountBusy | E::OperationInFlight => {
            ("A conta está em uso. Tente de novo em instantes", "The account is busy. Try again in a moment")
        }
        E::DocumentAlreadyHasAccount => {
            ("Este documento já tem conta neste banco", "This document already has an account at this bank")
        }
        E::JointHolderMissing => (
            "Todo titular de uma conta conjunta precisa ter conta neste banco",
            "Every holder of a joint account needs an account at this bank",
        ),
        E::AccountPendingHolders => (
            "A conta conjunta aguarda a confirmação de todos os titulares",
            "The joint account waits for every holder to confirm it",
        ),
        E::JointAccountsLimit => (
            "Este titular já participa do máximo de contas conjuntas",
            "This holder already has the most joint accounts",
        ),
        E::SessionRequired => ("Entre na sua conta para abrir uma conta conjunta", "Log in to open a joint account"),
        E::WrongBank => ("Esta conta é de outro banco", "This account belongs to another bank"),
        E::UnknownBank => ("Banco desconhecido na rede", "No such bank in the network"),
        E::KeyTaken => ("Esta chave Pix já está cadastrada", "This Pix key is already registered"),
        E::KeyNotFound => ("Chave Pix não encontrada", "No such Pix key"),
        E::KeyDocumentMismatch => (
            "Uma chave CPF/CNPJ só vale para a conta de que esse documento é o único titular",
            "A CPF/CNPJ key only goes on the account that document alone holds",
        ),
        E::KeyLimit => ("Limite de chaves desta conta atingido", "This account has its most keys"),
        E::PasswordInvalid => ("A senha deve ter de 8 a 128 caracteres", "The password must have 8 to 128 characters"),
        E::NameInvalid => ("Informe um nome de até 100 caracteres", "Give a name of up to 100 characters"),
        E::DocumentsInvalid | E::DocumentInvalid | E::DocumentCheckDigits => ("Documento inválido", "Invalid document"),
        E::AmountInvalid | E::AmountNegative | E::AmountTooPrecise | E::AmountTooLarge | E::AmountZero => {
            ("Valor inválido", "Invalid amount")
        }
        E::DepositsDisabled => (
            "Depósitos pelo aplicativo não estão disponíveis neste banco",
            "Deposits from the app are not available at this bank",
        ),
        E::DepositLimit => ("Limite diário de depósitos atingido", "Today's deposit limit is reached"),
        E::ConsentInvalid => (
            "Autorização inválida: confira o banco, o valor e a validade",
            "Invalid authorisation: check the bank, the amount and the expiry",
        ),
        E::ConsentLimit => ("Esta conta já tem o máximo de autorizações", "This account has its most authorisations"),
        E::ConsentNotFound => ("Autorização não encontrada", "No such authorisation"),
        E::PackagesPending => (
            "Você já tem o máximo de pacotes aguardando liquidação. Aguarde a conclusão de um deles",
            "You have the most packages waiting for settlement. Wait for one to finish",
        ),
        E::SettlementBusy => (
            "O banco está com a fila de liquidação cheia. Nada foi enviado; tente de novo em instantes",
            "The bank's settlement queue is full. Nothing was sent; try again in a moment",
        ),
        E::Unavailable => {
            ("O banco não está disponível agora. Tente de novo", "The bank is not available now. Try again")
        }
        _ => return None,
    };
    Some(if lang == Lang::Pt { pt } else { en })
}

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

    #[test]
    fn refusals_a_customer_meets_have_words_in_both_languages() {
        use shared::ErrorCode as E;
        for code in
            [E::InvalidCredentials, E::RateLimited, E::InsufficientFunds, E::AccountPendingHolders, E::KeyNotFound]
        {
            let (pt, en) = (error_text(Lang::Pt, code), error_text(Lang::En, code));
            assert!(pt.is_some() && en.is_some() && pt != en, "{code}");
        }
        assert_eq!(error_text(Lang::Pt, E::InvalidCredentials), Some("IBK ou senha incorretos"));
    }
}
