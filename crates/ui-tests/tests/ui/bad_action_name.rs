trailseal::actions! {
    enum ShopAction {
        VoucherRedeem = "Voucher.Redeem" {
            trail: "admin",
            target: "voucher",
            en: "{actor} redeemed voucher {target}",
            de: "{actor} hat Gutschein {target} eingelöst",
        },
    }
}

fn main() {
    let _ = ShopAction::VoucherRedeem;
}
