trailseal::actions! {
    enum ShopAction {
        VoucherRedeem = "voucher.redeem" {
            trail: "admin",
            target: "voucher",
            en: "{actor} redeemed voucher {target}",
            de: "{actor} hat Gutschein {target} eingelöst",
        },
        VoucherUse = "voucher.redeem" {
            trail: "admin",
            target: "voucher",
            en: "{actor} used voucher {target}",
            de: "{actor} hat Gutschein {target} benutzt",
        },
    }
}

fn main() {
    let _ = (ShopAction::VoucherRedeem, ShopAction::VoucherUse);
}
