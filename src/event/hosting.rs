//! The hosting taxonomy: ready-made actions for a web-hosting control panel
//! and for the provider's server logs.

crate::actions! {
    /// The actions of a web-hosting control panel and of the provider's
    /// server logs, ready to record with [`audit!`](crate::audit!).
    ///
    /// Panel actions go to the `admin` trail, changes to customer master data
    /// to `master-data`, and the server logs to `web`, `mail`, `mailbox`,
    /// `mailinglist`, `php-mail` and `ftp`. Each action names the type of its
    /// target and the metadata fields its messages use; the standard
    /// placeholders (`{actor}`, `{target}`, `{ip}`, `{reason}` …) are listed
    /// in [`STANDARD_PLACEHOLDERS`](crate::event::STANDARD_PLACEHOLDERS).
    ///
    /// For server-log entries the actor is whoever the log names: the
    /// `.htaccess` or FTP user, the mailbox user, or
    /// [`Actor::anonymous`](crate::Actor::anonymous) for a visitor or sender
    /// the log does not identify; the log line's own time goes into
    /// `occurred_at`.
    #[non_exhaustive]
    pub enum HostingAction {
        // Accounts: customers, resellers, administrators.
        CustomerCreate = "customer.create" {
            trail: "admin",
            target: "customer",
            en: "{actor} created customer {target}",
            de: "{actor} hat Kunde {target} angelegt",
        },
        CustomerUpdate = "customer.update" {
            trail: "admin",
            target: "customer",
            en: "{actor} updated customer {target}",
            de: "{actor} hat Kunde {target} geändert",
        },
        CustomerDelete = "customer.delete" {
            trail: "admin",
            target: "customer",
            en: "{actor} deleted customer {target}",
            de: "{actor} hat Kunde {target} gelöscht",
        },
        CustomerSuspend = "customer.suspend" {
            trail: "admin",
            target: "customer",
            en: "{actor} suspended customer {target}",
            de: "{actor} hat Kunde {target} gesperrt",
        },
        CustomerUnsuspend = "customer.unsuspend" {
            trail: "admin",
            target: "customer",
            en: "{actor} unsuspended customer {target}",
            de: "{actor} hat Kunde {target} entsperrt",
        },
        CustomerPasswordChange = "customer.password_change" {
            trail: "admin",
            target: "customer",
            en: "{actor} changed the password of customer {target}",
            de: "{actor} hat das Passwort von Kunde {target} geändert",
        },
        CustomerImpersonate = "customer.impersonate" {
            trail: "admin",
            target: "customer",
            en: "{actor} signed in as customer {target}",
            de: "{actor} hat sich als Kunde {target} angemeldet",
        },
        ResellerCreate = "reseller.create" {
            trail: "admin",
            target: "reseller",
            en: "{actor} created reseller {target}",
            de: "{actor} hat Reseller {target} angelegt",
        },
        ResellerUpdate = "reseller.update" {
            trail: "admin",
            target: "reseller",
            en: "{actor} updated reseller {target}",
            de: "{actor} hat Reseller {target} geändert",
        },
        ResellerDelete = "reseller.delete" {
            trail: "admin",
            target: "reseller",
            en: "{actor} deleted reseller {target}",
            de: "{actor} hat Reseller {target} gelöscht",
        },
        ResellerSuspend = "reseller.suspend" {
            trail: "admin",
            target: "reseller",
            en: "{actor} suspended reseller {target}",
            de: "{actor} hat Reseller {target} gesperrt",
        },
        ResellerUnsuspend = "reseller.unsuspend" {
            trail: "admin",
            target: "reseller",
            en: "{actor} unsuspended reseller {target}",
            de: "{actor} hat Reseller {target} entsperrt",
        },
        ResellerPasswordChange = "reseller.password_change" {
            trail: "admin",
            target: "reseller",
            en: "{actor} changed the password of reseller {target}",
            de: "{actor} hat das Passwort von Reseller {target} geändert",
        },
        ResellerImpersonate = "reseller.impersonate" {
            trail: "admin",
            target: "reseller",
            en: "{actor} signed in as reseller {target}",
            de: "{actor} hat sich als Reseller {target} angemeldet",
        },
        AdminCreate = "admin.create" {
            trail: "admin",
            target: "admin",
            en: "{actor} created administrator {target}",
            de: "{actor} hat Administrator {target} angelegt",
        },
        AdminUpdate = "admin.update" {
            trail: "admin",
            target: "admin",
            en: "{actor} updated administrator {target}",
            de: "{actor} hat Administrator {target} geändert",
        },
        AdminDelete = "admin.delete" {
            trail: "admin",
            target: "admin",
            en: "{actor} deleted administrator {target}",
            de: "{actor} hat Administrator {target} gelöscht",
        },
        AdminSuspend = "admin.suspend" {
            trail: "admin",
            target: "admin",
            en: "{actor} suspended administrator {target}",
            de: "{actor} hat Administrator {target} gesperrt",
        },
        AdminUnsuspend = "admin.unsuspend" {
            trail: "admin",
            target: "admin",
            en: "{actor} unsuspended administrator {target}",
            de: "{actor} hat Administrator {target} entsperrt",
        },
        AdminPasswordChange = "admin.password_change" {
            trail: "admin",
            target: "admin",
            en: "{actor} changed the password of administrator {target}",
            de: "{actor} hat das Passwort von Administrator {target} geändert",
        },
        AdminImpersonate = "admin.impersonate" {
            trail: "admin",
            target: "admin",
            en: "{actor} signed in as administrator {target}",
            de: "{actor} hat sich als Administrator {target} angemeldet",
        },

        // Hosting plans.
        PlanCreate = "plan.create" {
            trail: "admin",
            target: "plan",
            en: "{actor} created hosting plan {target}",
            de: "{actor} hat Tarif {target} angelegt",
        },
        PlanUpdate = "plan.update" {
            trail: "admin",
            target: "plan",
            en: "{actor} updated hosting plan {target}",
            de: "{actor} hat Tarif {target} geändert",
        },
        PlanDelete = "plan.delete" {
            trail: "admin",
            target: "plan",
            en: "{actor} deleted hosting plan {target}",
            de: "{actor} hat Tarif {target} gelöscht",
        },
        PlanAssign = "plan.assign" {
            trail: "admin",
            target: "customer",
            fields: ["plan"],
            en: "{actor} assigned hosting plan {plan} to customer {target}",
            de: "{actor} hat Kunde {target} den Tarif {plan} zugewiesen",
        },

        // Domains, subdomains and domain aliases.
        DomainCreate = "domain.create" {
            trail: "admin",
            target: "domain",
            en: "{actor} created domain {target}",
            de: "{actor} hat Domain {target} angelegt",
        },
        DomainUpdate = "domain.update" {
            trail: "admin",
            target: "domain",
            en: "{actor} updated domain {target}",
            de: "{actor} hat Domain {target} geändert",
        },
        DomainDelete = "domain.delete" {
            trail: "admin",
            target: "domain",
            en: "{actor} deleted domain {target}",
            de: "{actor} hat Domain {target} gelöscht",
        },
        DomainEnable = "domain.enable" {
            trail: "admin",
            target: "domain",
            en: "{actor} enabled domain {target}",
            de: "{actor} hat Domain {target} aktiviert",
        },
        DomainDisable = "domain.disable" {
            trail: "admin",
            target: "domain",
            en: "{actor} disabled domain {target}",
            de: "{actor} hat Domain {target} deaktiviert",
        },
        DomainTransfer = "domain.transfer" {
            trail: "admin",
            target: "domain",
            en: "{actor} transferred domain {target}",
            de: "{actor} hat Domain {target} übertragen",
        },
        SubdomainCreate = "subdomain.create" {
            trail: "admin",
            target: "subdomain",
            en: "{actor} created subdomain {target}",
            de: "{actor} hat Subdomain {target} angelegt",
        },
        SubdomainUpdate = "subdomain.update" {
            trail: "admin",
            target: "subdomain",
            en: "{actor} updated subdomain {target}",
            de: "{actor} hat Subdomain {target} geändert",
        },
        SubdomainDelete = "subdomain.delete" {
            trail: "admin",
            target: "subdomain",
            en: "{actor} deleted subdomain {target}",
            de: "{actor} hat Subdomain {target} gelöscht",
        },
        SubdomainEnable = "subdomain.enable" {
            trail: "admin",
            target: "subdomain",
            en: "{actor} enabled subdomain {target}",
            de: "{actor} hat Subdomain {target} aktiviert",
        },
        SubdomainDisable = "subdomain.disable" {
            trail: "admin",
            target: "subdomain",
            en: "{actor} disabled subdomain {target}",
            de: "{actor} hat Subdomain {target} deaktiviert",
        },
        AliasCreate = "alias.create" {
            trail: "admin",
            target: "alias",
            en: "{actor} created domain alias {target}",
            de: "{actor} hat Domain-Alias {target} angelegt",
        },
        AliasUpdate = "alias.update" {
            trail: "admin",
            target: "alias",
            en: "{actor} updated domain alias {target}",
            de: "{actor} hat Domain-Alias {target} geändert",
        },
        AliasDelete = "alias.delete" {
            trail: "admin",
            target: "alias",
            en: "{actor} deleted domain alias {target}",
            de: "{actor} hat Domain-Alias {target} gelöscht",
        },
        AliasEnable = "alias.enable" {
            trail: "admin",
            target: "alias",
            en: "{actor} enabled domain alias {target}",
            de: "{actor} hat Domain-Alias {target} aktiviert",
        },
        AliasDisable = "alias.disable" {
            trail: "admin",
            target: "alias",
            en: "{actor} disabled domain alias {target}",
            de: "{actor} hat Domain-Alias {target} deaktiviert",
        },

        // DNS zones and records.
        DnsZoneCreate = "dns.zone.create" {
            trail: "admin",
            target: "dns_zone",
            en: "{actor} created DNS zone {target}",
            de: "{actor} hat DNS-Zone {target} angelegt",
        },
        DnsZoneUpdate = "dns.zone.update" {
            trail: "admin",
            target: "dns_zone",
            en: "{actor} updated DNS zone {target}",
            de: "{actor} hat DNS-Zone {target} geändert",
        },
        DnsZoneDelete = "dns.zone.delete" {
            trail: "admin",
            target: "dns_zone",
            en: "{actor} deleted DNS zone {target}",
            de: "{actor} hat DNS-Zone {target} gelöscht",
        },
        DnsRecordCreate = "dns.record.create" {
            trail: "admin",
            target: "dns_record",
            en: "{actor} created DNS record {target}",
            de: "{actor} hat DNS-Eintrag {target} angelegt",
        },
        DnsRecordUpdate = "dns.record.update" {
            trail: "admin",
            target: "dns_record",
            en: "{actor} updated DNS record {target}",
            de: "{actor} hat DNS-Eintrag {target} geändert",
        },
        DnsRecordDelete = "dns.record.delete" {
            trail: "admin",
            target: "dns_record",
            en: "{actor} deleted DNS record {target}",
            de: "{actor} hat DNS-Eintrag {target} gelöscht",
        },

        // SSL certificates.
        SslCertificateIssue = "ssl_certificate.issue" {
            trail: "admin",
            target: "ssl_certificate",
            en: "{actor} issued SSL certificate {target}",
            de: "{actor} hat SSL-Zertifikat {target} ausgestellt",
        },
        SslCertificateRenew = "ssl_certificate.renew" {
            trail: "admin",
            target: "ssl_certificate",
            en: "{actor} renewed SSL certificate {target}",
            de: "{actor} hat SSL-Zertifikat {target} erneuert",
        },
        SslCertificateUpload = "ssl_certificate.upload" {
            trail: "admin",
            target: "ssl_certificate",
            en: "{actor} uploaded SSL certificate {target}",
            de: "{actor} hat SSL-Zertifikat {target} hochgeladen",
        },
        SslCertificateDelete = "ssl_certificate.delete" {
            trail: "admin",
            target: "ssl_certificate",
            en: "{actor} deleted SSL certificate {target}",
            de: "{actor} hat SSL-Zertifikat {target} gelöscht",
        },

        // Mail: mailboxes, forwarders, autoresponders, mailing lists.
        MailboxCreate = "mailbox.create" {
            trail: "admin",
            target: "mailbox",
            en: "{actor} created mailbox {target}",
            de: "{actor} hat Postfach {target} angelegt",
        },
        MailboxUpdate = "mailbox.update" {
            trail: "admin",
            target: "mailbox",
            en: "{actor} updated mailbox {target}",
            de: "{actor} hat Postfach {target} geändert",
        },
        MailboxDelete = "mailbox.delete" {
            trail: "admin",
            target: "mailbox",
            en: "{actor} deleted mailbox {target}",
            de: "{actor} hat Postfach {target} gelöscht",
        },
        MailboxPasswordChange = "mailbox.password_change" {
            trail: "admin",
            target: "mailbox",
            en: "{actor} changed the password of mailbox {target}",
            de: "{actor} hat das Passwort von Postfach {target} geändert",
        },
        ForwarderCreate = "forwarder.create" {
            trail: "admin",
            target: "forwarder",
            en: "{actor} created forwarder {target}",
            de: "{actor} hat Weiterleitung {target} angelegt",
        },
        ForwarderUpdate = "forwarder.update" {
            trail: "admin",
            target: "forwarder",
            en: "{actor} updated forwarder {target}",
            de: "{actor} hat Weiterleitung {target} geändert",
        },
        ForwarderDelete = "forwarder.delete" {
            trail: "admin",
            target: "forwarder",
            en: "{actor} deleted forwarder {target}",
            de: "{actor} hat Weiterleitung {target} gelöscht",
        },
        AutoresponderCreate = "autoresponder.create" {
            trail: "admin",
            target: "autoresponder",
            en: "{actor} created autoresponder {target}",
            de: "{actor} hat Autoresponder {target} angelegt",
        },
        AutoresponderUpdate = "autoresponder.update" {
            trail: "admin",
            target: "autoresponder",
            en: "{actor} updated autoresponder {target}",
            de: "{actor} hat Autoresponder {target} geändert",
        },
        AutoresponderDelete = "autoresponder.delete" {
            trail: "admin",
            target: "autoresponder",
            en: "{actor} deleted autoresponder {target}",
            de: "{actor} hat Autoresponder {target} gelöscht",
        },
        AutoresponderEnable = "autoresponder.enable" {
            trail: "admin",
            target: "autoresponder",
            en: "{actor} enabled autoresponder {target}",
            de: "{actor} hat Autoresponder {target} aktiviert",
        },
        AutoresponderDisable = "autoresponder.disable" {
            trail: "admin",
            target: "autoresponder",
            en: "{actor} disabled autoresponder {target}",
            de: "{actor} hat Autoresponder {target} deaktiviert",
        },
        MailingListCreate = "mailing_list.create" {
            trail: "admin",
            target: "mailing_list",
            en: "{actor} created mailing list {target}",
            de: "{actor} hat Mailingliste {target} angelegt",
        },
        MailingListUpdate = "mailing_list.update" {
            trail: "admin",
            target: "mailing_list",
            en: "{actor} updated mailing list {target}",
            de: "{actor} hat Mailingliste {target} geändert",
        },
        MailingListDelete = "mailing_list.delete" {
            trail: "admin",
            target: "mailing_list",
            en: "{actor} deleted mailing list {target}",
            de: "{actor} hat Mailingliste {target} gelöscht",
        },
        MailingListSubscribe = "mailing_list.subscribe" {
            trail: "admin",
            target: "mailing_list",
            fields: ["address"],
            en: "{actor} subscribed {address} to mailing list {target}",
            de: "{actor} hat {address} in Mailingliste {target} eingetragen",
        },
        MailingListUnsubscribe = "mailing_list.unsubscribe" {
            trail: "admin",
            target: "mailing_list",
            fields: ["address"],
            en: "{actor} unsubscribed {address} from mailing list {target}",
            de: "{actor} hat {address} aus Mailingliste {target} ausgetragen",
        },

        // Databases and their users.
        DatabaseCreate = "database.create" {
            trail: "admin",
            target: "database",
            en: "{actor} created database {target}",
            de: "{actor} hat Datenbank {target} angelegt",
        },
        DatabaseUpdate = "database.update" {
            trail: "admin",
            target: "database",
            en: "{actor} updated database {target}",
            de: "{actor} hat Datenbank {target} geändert",
        },
        DatabaseDelete = "database.delete" {
            trail: "admin",
            target: "database",
            en: "{actor} deleted database {target}",
            de: "{actor} hat Datenbank {target} gelöscht",
        },
        DatabaseImport = "database.import" {
            trail: "admin",
            target: "database",
            en: "{actor} imported database {target}",
            de: "{actor} hat Datenbank {target} importiert",
        },
        DatabaseExport = "database.export" {
            trail: "admin",
            target: "database",
            en: "{actor} exported database {target}",
            de: "{actor} hat Datenbank {target} exportiert",
        },
        DatabaseUserCreate = "database_user.create" {
            trail: "admin",
            target: "database_user",
            en: "{actor} created database user {target}",
            de: "{actor} hat Datenbankbenutzer {target} angelegt",
        },
        DatabaseUserUpdate = "database_user.update" {
            trail: "admin",
            target: "database_user",
            en: "{actor} updated database user {target}",
            de: "{actor} hat Datenbankbenutzer {target} geändert",
        },
        DatabaseUserDelete = "database_user.delete" {
            trail: "admin",
            target: "database_user",
            en: "{actor} deleted database user {target}",
            de: "{actor} hat Datenbankbenutzer {target} gelöscht",
        },
        DatabaseUserPasswordChange = "database_user.password_change" {
            trail: "admin",
            target: "database_user",
            en: "{actor} changed the password of database user {target}",
            de: "{actor} hat das Passwort von Datenbankbenutzer {target} geändert",
        },
        DatabaseUserGrant = "database_user.grant" {
            trail: "admin",
            target: "database_user",
            fields: ["database"],
            en: "{actor} granted database user {target} access to database {database}",
            de: "{actor} hat Datenbankbenutzer {target} Zugriff auf Datenbank {database} gewährt",
        },
        DatabaseUserRevoke = "database_user.revoke" {
            trail: "admin",
            target: "database_user",
            fields: ["database"],
            en: "{actor} revoked the access of database user {target} to database {database}",
            de: "{actor} hat Datenbankbenutzer {target} den Zugriff auf Datenbank {database} entzogen",
        },

        // FTP accounts, SSH keys, .htaccess protection, PHP, cron.
        FtpAccountCreate = "ftp_account.create" {
            trail: "admin",
            target: "ftp_account",
            en: "{actor} created FTP account {target}",
            de: "{actor} hat FTP-Zugang {target} angelegt",
        },
        FtpAccountUpdate = "ftp_account.update" {
            trail: "admin",
            target: "ftp_account",
            en: "{actor} updated FTP account {target}",
            de: "{actor} hat FTP-Zugang {target} geändert",
        },
        FtpAccountDelete = "ftp_account.delete" {
            trail: "admin",
            target: "ftp_account",
            en: "{actor} deleted FTP account {target}",
            de: "{actor} hat FTP-Zugang {target} gelöscht",
        },
        FtpAccountPasswordChange = "ftp_account.password_change" {
            trail: "admin",
            target: "ftp_account",
            en: "{actor} changed the password of FTP account {target}",
            de: "{actor} hat das Passwort von FTP-Zugang {target} geändert",
        },
        SshKeyAdd = "ssh_key.add" {
            trail: "admin",
            target: "ssh_key",
            en: "{actor} added SSH key {target}",
            de: "{actor} hat SSH-Schlüssel {target} hinzugefügt",
        },
        SshKeyRemove = "ssh_key.remove" {
            trail: "admin",
            target: "ssh_key",
            en: "{actor} removed SSH key {target}",
            de: "{actor} hat SSH-Schlüssel {target} entfernt",
        },
        HtaccessProtect = "htaccess.protect" {
            trail: "admin",
            target: "directory",
            en: "{actor} protected directory {target} with .htaccess",
            de: "{actor} hat Verzeichnis {target} per .htaccess geschützt",
        },
        HtaccessUnprotect = "htaccess.unprotect" {
            trail: "admin",
            target: "directory",
            en: "{actor} removed the .htaccess protection of directory {target}",
            de: "{actor} hat den .htaccess-Schutz von Verzeichnis {target} aufgehoben",
        },
        HtaccessUserCreate = "htaccess_user.create" {
            trail: "admin",
            target: "htaccess_user",
            en: "{actor} created .htaccess user {target}",
            de: "{actor} hat .htaccess-Benutzer {target} angelegt",
        },
        HtaccessUserUpdate = "htaccess_user.update" {
            trail: "admin",
            target: "htaccess_user",
            en: "{actor} updated .htaccess user {target}",
            de: "{actor} hat .htaccess-Benutzer {target} geändert",
        },
        HtaccessUserDelete = "htaccess_user.delete" {
            trail: "admin",
            target: "htaccess_user",
            en: "{actor} deleted .htaccess user {target}",
            de: "{actor} hat .htaccess-Benutzer {target} gelöscht",
        },
        HtaccessUserPasswordChange = "htaccess_user.password_change" {
            trail: "admin",
            target: "htaccess_user",
            en: "{actor} changed the password of .htaccess user {target}",
            de: "{actor} hat das Passwort von .htaccess-Benutzer {target} geändert",
        },
        PhpConfigUpdate = "php_config.update" {
            trail: "admin",
            target: "domain",
            en: "{actor} changed the PHP settings of {target}",
            de: "{actor} hat die PHP-Einstellungen von {target} geändert",
        },
        CronJobCreate = "cron_job.create" {
            trail: "admin",
            target: "cron_job",
            en: "{actor} created cron job {target}",
            de: "{actor} hat Cronjob {target} angelegt",
        },
        CronJobUpdate = "cron_job.update" {
            trail: "admin",
            target: "cron_job",
            en: "{actor} updated cron job {target}",
            de: "{actor} hat Cronjob {target} geändert",
        },
        CronJobDelete = "cron_job.delete" {
            trail: "admin",
            target: "cron_job",
            en: "{actor} deleted cron job {target}",
            de: "{actor} hat Cronjob {target} gelöscht",
        },
        CronJobEnable = "cron_job.enable" {
            trail: "admin",
            target: "cron_job",
            en: "{actor} enabled cron job {target}",
            de: "{actor} hat Cronjob {target} aktiviert",
        },
        CronJobDisable = "cron_job.disable" {
            trail: "admin",
            target: "cron_job",
            en: "{actor} disabled cron job {target}",
            de: "{actor} hat Cronjob {target} deaktiviert",
        },

        // Backups.
        BackupCreate = "backup.create" {
            trail: "admin",
            target: "backup",
            en: "{actor} created backup {target}",
            de: "{actor} hat Sicherung {target} erstellt",
        },
        BackupRestore = "backup.restore" {
            trail: "admin",
            target: "backup",
            en: "{actor} restored backup {target}",
            de: "{actor} hat Sicherung {target} wiederhergestellt",
        },
        BackupDownload = "backup.download" {
            trail: "admin",
            target: "backup",
            en: "{actor} downloaded backup {target}",
            de: "{actor} hat Sicherung {target} heruntergeladen",
        },
        BackupDelete = "backup.delete" {
            trail: "admin",
            target: "backup",
            en: "{actor} deleted backup {target}",
            de: "{actor} hat Sicherung {target} gelöscht",
        },

        // Sessions: login, failed login (with its reason), logout.
        SessionLogin = "session.login" {
            trail: "admin",
            target: "session",
            en: "{actor} logged in",
            de: "{actor} hat sich angemeldet",
        },
        SessionLoginFailed = "session.login_failed" {
            trail: "admin",
            target: "session",
            en: "login as {actor} failed: {reason}",
            de: "Anmeldung als {actor} fehlgeschlagen: {reason}",
        },
        SessionLogout = "session.logout" {
            trail: "admin",
            target: "session",
            en: "{actor} logged out",
            de: "{actor} hat sich abgemeldet",
        },

        // API keys (the key's id or label, never the key).
        ApiKeyCreate = "api_key.create" {
            trail: "admin",
            target: "api_key",
            en: "{actor} created API key {target}",
            de: "{actor} hat API-Schlüssel {target} angelegt",
        },
        ApiKeyRevoke = "api_key.revoke" {
            trail: "admin",
            target: "api_key",
            en: "{actor} revoked API key {target}",
            de: "{actor} hat API-Schlüssel {target} widerrufen",
        },

        // The audit trail itself.
        AuditLogView = "audit_log.view" {
            trail: "admin",
            target: "trail",
            en: "{actor} viewed audit trail {target}",
            de: "{actor} hat Audit-Protokoll {target} eingesehen",
        },
        AuditLogExport = "audit_log.export" {
            trail: "admin",
            target: "trail",
            en: "{actor} exported audit trail {target}",
            de: "{actor} hat Audit-Protokoll {target} exportiert",
        },
        AuditLogPurge = "audit_log.purge" {
            trail: "admin",
            target: "trail",
            en: "{actor} purged expired entries of audit trail {target}",
            de: "{actor} hat abgelaufene Einträge von Audit-Protokoll {target} gelöscht",
        },
        AuditLogHoldPlace = "audit_log.hold.place" {
            trail: "admin",
            target: "trail",
            fields: ["hold"],
            en: "{actor} placed legal hold {hold} on audit trail {target}",
            de: "{actor} hat Löschsperre {hold} für Audit-Protokoll {target} verhängt",
        },
        AuditLogHoldRelease = "audit_log.hold.release" {
            trail: "admin",
            target: "trail",
            fields: ["hold"],
            en: "{actor} released legal hold {hold} on audit trail {target}",
            de: "{actor} hat Löschsperre {hold} für Audit-Protokoll {target} aufgehoben",
        },
        AuditLogVerify = "audit_log.verify" {
            trail: "admin",
            target: "trail",
            en: "{actor} verified audit trail {target}",
            de: "{actor} hat Audit-Protokoll {target} geprüft",
        },

        // Customer master data (the `master-data` trail, deleted at the end of
        // the year following the end of the contract).
        MasterDataUpdate = "master_data.update" {
            trail: "master-data",
            target: "customer",
            en: "{actor} updated the master data of customer {target}",
            de: "{actor} hat die Stammdaten von Kunde {target} geändert",
        },
        ContractTerminated = "contract.terminated" {
            trail: "master-data",
            target: "customer",
            fields: ["ends_on"],
            en: "{actor} recorded the end of the contract of customer {target} on {ends_on}",
            de: "{actor} hat das Vertragsende von Kunde {target} zum {ends_on} erfasst",
        },

        // Server logs: the weblog (`web`): domain, request (path + query), visitor
        // IP, time (`occurred_at`), status, bytes, user agent, referrer, `.htaccess` user.
        WebRequest = "web.request" {
            trail: "web",
            target: "domain",
            fields: ["request", "status", "bytes", "referrer"],
            en: "{ip} requested {request} on {target}: status {status}, {bytes} bytes",
            de: "{ip} hat {request} auf {target} abgerufen: Status {status}, {bytes} Bytes",
        },

        // Mail metadata (`mail`): time, sender, recipient, Message-ID (the target),
        // size, peer IP and hostname, status; the error text as the failure reason.
        MailDelivery = "mail.delivery" {
            trail: "mail",
            target: "message",
            fields: ["sender", "recipient", "size", "peer_host", "status"],
            en: "mail {target} from {sender} to {recipient} ({size} bytes, peer {peer_host} {ip}): {status}",
            de: "E-Mail {target} von {sender} an {recipient} ({size} Bytes, Gegenstelle {peer_host} {ip}): {status}",
        },
        // Every other line of a queued message, sealed on its own: client,
        // Message-ID, sender, size, removal. `queue_id` joins it to the
        // message's deliveries.
        MailQueue = "mail.queue" {
            trail: "mail",
            target: "message",
            fields: ["queue_id", "text"],
            en: "{actor} handled queued mail {queue_id}: {text}",
            de: "{actor} hat die E-Mail {queue_id} in der Warteschlange bearbeitet: {text}",
        },
        // A mail server's line of no queued message: connections, TLS,
        // disconnections, warnings; the peer when the line names one.
        MailSession = "mail.session" {
            trail: "mail",
            target: "peer",
            fields: ["peer_host", "text"],
            en: "{actor} talked to {peer_host} ({ip}): {text}",
            de: "{actor} hat mit {peer_host} ({ip}) kommuniziert: {text}",
        },

        // Mailbox access over IMAP/POP (`mailbox`): time, IP, user, bytes; a
        // failed login (e.g. wrong password) as the failure reason.
        MailboxAccess = "mailbox.access" {
            trail: "mailbox",
            target: "mailbox",
            fields: ["protocol", "bytes"],
            en: "{actor} accessed mailbox {target} via {protocol} from {ip} ({bytes} bytes)",
            de: "{actor} hat von {ip} per {protocol} auf Postfach {target} zugegriffen ({bytes} Bytes)",
        },

        // Mailing list server (`mailinglist`): posts, bounces, members, settings.
        MailingListPost = "mailinglist.post" {
            trail: "mailinglist",
            target: "mailing_list",
            fields: ["sender", "recipients", "size", "message_id", "status"],
            en: "{sender} posted {message_id} to mailing list {target} ({recipients} recipients, {size} bytes): {status}",
            de: "{sender} hat {message_id} an Mailingliste {target} geschickt ({recipients} Empfänger, {size} Bytes): {status}",
        },
        MailingListBounce = "mailinglist.bounce" {
            trail: "mailinglist",
            target: "mailing_list",
            fields: ["address"],
            en: "mail from mailing list {target} to {address} bounced",
            de: "E-Mail von Mailingliste {target} an {address} kam unzustellbar zurück",
        },
        MailingListMemberAdd = "mailinglist.member.add" {
            trail: "mailinglist",
            target: "mailing_list",
            fields: ["address"],
            en: "{actor} added {address} to mailing list {target}",
            de: "{actor} hat {address} in Mailingliste {target} aufgenommen",
        },
        MailingListMemberRemove = "mailinglist.member.remove" {
            trail: "mailinglist",
            target: "mailing_list",
            fields: ["address"],
            en: "{actor} removed {address} from mailing list {target}",
            de: "{actor} hat {address} aus Mailingliste {target} entfernt",
        },
        MailingListConfigUpdate = "mailinglist.config.update" {
            trail: "mailinglist",
            target: "mailing_list",
            en: "{actor} changed the settings of mailing list {target}",
            de: "{actor} hat die Einstellungen von Mailingliste {target} geändert",
        },

        // Mail sent by scripts (`php-mail`): script path, sender, recipient, time,
        // Message-ID, X-Mailer.
        PhpMailSend = "php_mail.send" {
            trail: "php-mail",
            target: "script",
            fields: ["sender", "recipient", "message_id", "x_mailer"],
            en: "script {target} sent mail {message_id} from {sender} to {recipient} (X-Mailer {x_mailer})",
            de: "Skript {target} hat E-Mail {message_id} von {sender} an {recipient} gesendet (X-Mailer {x_mailer})",
        },

        // FTP (`ftp`): logins and login attempts, every transfer, with user, IP, time.
        FtpLogin = "ftp.login" {
            trail: "ftp",
            target: "ftp_account",
            en: "{actor} logged in to FTP account {target} from {ip}",
            de: "{actor} hat sich von {ip} am FTP-Zugang {target} angemeldet",
        },
        FtpUpload = "ftp.upload" {
            trail: "ftp",
            target: "file",
            fields: ["bytes"],
            en: "{actor} uploaded {target} from {ip} ({bytes} bytes)",
            de: "{actor} hat {target} von {ip} hochgeladen ({bytes} Bytes)",
        },
        FtpDownload = "ftp.download" {
            trail: "ftp",
            target: "file",
            fields: ["bytes"],
            en: "{actor} downloaded {target} from {ip} ({bytes} bytes)",
            de: "{actor} hat {target} von {ip} heruntergeladen ({bytes} Bytes)",
        },
        // Every other line of an FTP session: connections, logouts, commands.
        FtpSession = "ftp.session" {
            trail: "ftp",
            target: "ftp_account",
            fields: ["text"],
            en: "FTP session of {actor} ({ip}): {text}",
            de: "FTP-Sitzung von {actor} ({ip}): {text}",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::HostingAction;
    use crate::event::Action;

    #[test]
    fn every_action_round_trips_through_its_stored_name() {
        for &action in HostingAction::ALL {
            assert_eq!(HostingAction::from_name(action.name()), Some(action));
            assert_eq!(action.to_string(), action.name());
        }
        assert_eq!(HostingAction::from_name("database.creat"), None);
    }

    #[test]
    fn the_taxonomy_covers_every_trail_of_the_design() {
        let trails: std::collections::BTreeSet<&str> = HostingAction::ALL
            .iter()
            .map(|action| action.spec().trail())
            .collect();
        assert_eq!(
            trails.into_iter().collect::<Vec<_>>(),
            [
                "admin",
                "ftp",
                "mail",
                "mailbox",
                "mailinglist",
                "master-data",
                "php-mail",
                "web"
            ]
        );
    }

    #[test]
    fn the_design_example_is_shipped() {
        let spec = HostingAction::DatabaseCreate.spec();
        assert_eq!(spec.name(), "database.create");
        assert_eq!(spec.trail(), "admin");
        assert_eq!(spec.target(), "database");
        assert_eq!(spec.english(), "{actor} created database {target}");
        assert_eq!(spec.german(), "{actor} hat Datenbank {target} angelegt");
        assert_eq!(
            HostingAction::ContractTerminated.name(),
            "contract.terminated",
            "retention folds the master-data trail for this name"
        );
    }
}
