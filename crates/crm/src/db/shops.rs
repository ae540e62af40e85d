//! Shops, advisors, customers and vehicles.

use sqlx::any::AnyRow;

use super::{Db, DbError, flag, int, json, num, small, text, text_or_empty, to_json};
use crate::money::{Currency, Money};
use crate::pricing::Shop;
use crate::slots::{Calendar, Hours};

/// A shop as stored: what it charges and when it can take cars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopRecord {
    pub id: String,
    pub name: String,
    pub currency: Currency,
    pub labor_rate_minor: i64,
    pub diagnostic_fee_minor: i64,
    pub supplies_bp: u32,
    pub supplies_cap_minor: i64,
    pub tax_bp: u32,
    pub tax_labor: bool,
    pub utc_offset_minutes: i32,
    pub hours: Vec<Hours>,
    pub bays: u32,
    pub slot_minutes: u32,
    pub is_default: bool,
    pub phone: String,
    pub address: String,
}

impl ShopRecord {
    /// What pricing needs.
    pub fn pricing(&self) -> Shop {
        let m = |minor| Money::new(minor, self.currency);
        Shop {
            labor_rate: m(self.labor_rate_minor),
            diagnostic_fee: m(self.diagnostic_fee_minor),
            supplies_bp: self.supplies_bp,
            supplies_cap: m(self.supplies_cap_minor),
            tax_bp: self.tax_bp,
            tax_labor: self.tax_labor,
        }
    }

    pub fn calendar(&self) -> Calendar {
        Calendar {
            utc_offset_minutes: self.utc_offset_minutes,
            hours: self.hours.clone(),
            bays: self.bays,
            slot_minutes: self.slot_minutes,
        }
    }

    /// Checks what a caller sent; the message names the field.
    pub fn check(&self) -> Result<(), DbError> {
        let bad = |m: String| Err(DbError::Invalid(m));
        if self.id.trim().is_empty() || self.name.trim().is_empty() {
            return bad("a shop needs an id and a name".into());
        }
        for (field, value) in [
            ("labor_rate_minor", self.labor_rate_minor),
            ("diagnostic_fee_minor", self.diagnostic_fee_minor),
            ("supplies_cap_minor", self.supplies_cap_minor),
        ] {
            if value < 0 {
                return bad(format!("{field} cannot be negative"));
            }
        }
        if self.tax_bp > 10_000 || self.supplies_bp > 10_000 {
            return bad("tax_bp and supplies_bp are basis points: at most 10000 (100 %)".into());
        }
        if self.bays == 0 || self.slot_minutes == 0 || self.slot_minutes > 24 * 60 {
            return bad("bays must be at least 1 and slot_minutes 1 to 1440".into());
        }
        if self.utc_offset_minutes.abs() > 14 * 60 {
            return bad("utc_offset_minutes must be within ±840".into());
        }
        for h in &self.hours {
            h.check().map_err(DbError::Invalid)?;
        }
        Ok(())
    }

    fn from_row(row: &AnyRow) -> Result<ShopRecord, DbError> {
        let currency = text(row, "currency")?;
        Ok(ShopRecord {
            id: text(row, "id")?,
            name: text(row, "name")?,
            currency: Currency::parse(&currency)
                .map_err(|_| DbError::Corrupt(format!("shop currency {currency:?}")))?,
            labor_rate_minor: int(row, "labor_rate_minor")?,
            diagnostic_fee_minor: int(row, "diagnostic_fee_minor")?,
            supplies_bp: small(row, "supplies_bp")?,
            supplies_cap_minor: int(row, "supplies_cap_minor")?,
            tax_bp: small(row, "tax_bp")?,
            tax_labor: flag(row, "tax_labor")?,
            utc_offset_minutes: i32::try_from(int(row, "utc_offset_minutes")?)
                .map_err(|_| DbError::Corrupt("utc_offset_minutes".into()))?,
            hours: json(row, "hours")?,
            bays: small(row, "bays")?,
            slot_minutes: small(row, "slot_minutes")?,
            is_default: flag(row, "is_default")?,
            phone: text(row, "phone")?,
            address: text(row, "address")?,
        })
    }
}

const SHOP_COLUMNS: &str =
    "id, name, currency, labor_rate_minor, diagnostic_fee_minor, supplies_bp,
    supplies_cap_minor, tax_bp, CASE WHEN tax_labor THEN 1 ELSE 0 END AS tax_labor,
    utc_offset_minutes, hours, bays, slot_minutes,
    CASE WHEN is_default THEN 1 ELSE 0 END AS is_default, phone, address";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisor {
    pub id: String,
    pub shop_id: String,
    pub name: String,
    pub email: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub phone: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VehicleRecord {
    pub vin: String,
    pub customer_id: String,
    pub home_shop_id: String,
    pub make: String,
    pub model_year: u32,
    pub plate: String,
}

fn null_if_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl Db {
    /// Creates or replaces a shop; a new default shop takes the mark from the old one.
    pub async fn put_shop(&self, tenant: &str, shop: &ShopRecord) -> Result<ShopRecord, DbError> {
        shop.check()?;
        let mut tx = self.pool.begin().await?;
        if shop.is_default {
            sqlx::query("UPDATE shops SET is_default = $3 WHERE tenant_id = $1 AND id <> $2")
                .bind(tenant)
                .bind(&shop.id)
                .bind(false)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO shops (tenant_id, id, name, currency, labor_rate_minor,
                 diagnostic_fee_minor, supplies_bp, supplies_cap_minor, tax_bp, tax_labor,
                 utc_offset_minutes, hours, bays, slot_minutes, is_default, phone, address)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name,
                 currency = excluded.currency, labor_rate_minor = excluded.labor_rate_minor,
                 diagnostic_fee_minor = excluded.diagnostic_fee_minor,
                 supplies_bp = excluded.supplies_bp, supplies_cap_minor = excluded.supplies_cap_minor,
                 tax_bp = excluded.tax_bp, tax_labor = excluded.tax_labor,
                 utc_offset_minutes = excluded.utc_offset_minutes, hours = excluded.hours,
                 bays = excluded.bays, slot_minutes = excluded.slot_minutes,
                 is_default = excluded.is_default, phone = excluded.phone,
                 address = excluded.address",
        )
        .bind(tenant)
        .bind(&shop.id)
        .bind(&shop.name)
        .bind(shop.currency.code())
        .bind(shop.labor_rate_minor)
        .bind(shop.diagnostic_fee_minor)
        .bind(num(shop.supplies_bp))
        .bind(shop.supplies_cap_minor)
        .bind(num(shop.tax_bp))
        .bind(shop.tax_labor)
        .bind(i64::from(shop.utc_offset_minutes))
        .bind(to_json(&shop.hours))
        .bind(num(shop.bays))
        .bind(num(shop.slot_minutes))
        .bind(shop.is_default)
        .bind(&shop.phone)
        .bind(&shop.address)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.shop(tenant, &shop.id).await
    }

    pub async fn shop(&self, tenant: &str, id: &str) -> Result<ShopRecord, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {SHOP_COLUMNS} FROM shops WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("shop {id:?}")))?;
        ShopRecord::from_row(&row)
    }

    pub async fn shops(&self, tenant: &str) -> Result<Vec<ShopRecord>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {SHOP_COLUMNS} FROM shops WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ShopRecord::from_row).collect()
    }

    /// Where a vehicle's leads go: its home shop (`home`, empty when it has none), else the
    /// tenant's default shop.
    pub async fn route(&self, tenant: &str, home: &str) -> Result<ShopRecord, DbError> {
        if !home.is_empty() {
            return self.shop(tenant, home).await;
        }
        let row = sqlx::query(&format!(
            "SELECT {SHOP_COLUMNS} FROM shops WHERE tenant_id = $1 AND is_default = $2"
        ))
        .bind(tenant)
        .bind(true)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| {
            DbError::Precondition(format!(
                "tenant {tenant:?} has no default shop for vehicles without a home shop: a \
                 manager marks one with PutShop is_default"
            ))
        })?;
        ShopRecord::from_row(&row)
    }

    pub async fn put_advisor(&self, tenant: &str, a: &Advisor) -> Result<Advisor, DbError> {
        if a.id.trim().is_empty() || a.name.trim().is_empty() {
            return Err(DbError::Invalid("an advisor needs an id and a name".into()));
        }
        self.shop(tenant, &a.shop_id).await?;
        sqlx::query(
            "INSERT INTO advisors (tenant_id, id, shop_id, name, email, active)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, id) DO UPDATE SET shop_id = excluded.shop_id,
                 name = excluded.name, email = excluded.email, active = excluded.active",
        )
        .bind(tenant)
        .bind(&a.id)
        .bind(&a.shop_id)
        .bind(&a.name)
        .bind(&a.email)
        .bind(a.active)
        .execute(&self.pool)
        .await?;
        self.advisor(tenant, &a.id).await
    }

    pub async fn advisor(&self, tenant: &str, id: &str) -> Result<Advisor, DbError> {
        self.advisors_where(tenant, "AND id = $2", id)
            .await?
            .pop()
            .ok_or_else(|| DbError::NotFound(format!("advisor {id:?}")))
    }

    /// The tenant's advisors, of one shop when `shop` is not empty.
    pub async fn advisors(&self, tenant: &str, shop: &str) -> Result<Vec<Advisor>, DbError> {
        if shop.is_empty() {
            self.advisors_where(tenant, "AND $2 = ''", "").await
        } else {
            self.advisors_where(tenant, "AND shop_id = $2", shop).await
        }
    }

    async fn advisors_where(
        &self,
        tenant: &str,
        filter: &str,
        arg: &str,
    ) -> Result<Vec<Advisor>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT id, shop_id, name, email, CASE WHEN active THEN 1 ELSE 0 END AS active
             FROM advisors WHERE tenant_id = $1 {filter} ORDER BY id"
        ))
        .bind(tenant)
        .bind(arg)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Advisor {
                    id: text(r, "id")?,
                    shop_id: text(r, "shop_id")?,
                    name: text(r, "name")?,
                    email: text(r, "email")?,
                    active: flag(r, "active")?,
                })
            })
            .collect()
    }

    pub async fn put_customer(&self, tenant: &str, c: &Customer) -> Result<Customer, DbError> {
        if c.id.trim().is_empty() {
            return Err(DbError::Invalid("a customer needs an id".into()));
        }
        sqlx::query(
            "INSERT INTO customers (tenant_id, id, name, phone, email) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name,
                 phone = excluded.phone, email = excluded.email",
        )
        .bind(tenant)
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.phone)
        .bind(&c.email)
        .execute(&self.pool)
        .await?;
        self.customer(tenant, &c.id).await
    }

    pub async fn customer(&self, tenant: &str, id: &str) -> Result<Customer, DbError> {
        let r = sqlx::query(
            "SELECT id, name, phone, email FROM customers WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("customer {id:?}")))?;
        Ok(Customer {
            id: text(&r, "id")?,
            name: text(&r, "name")?,
            phone: text(&r, "phone")?,
            email: text(&r, "email")?,
        })
    }

    pub async fn put_vehicle(
        &self,
        tenant: &str,
        v: &VehicleRecord,
    ) -> Result<VehicleRecord, DbError> {
        let vin = crate::vehicle::vin(&v.vin).map_err(DbError::Invalid)?;
        if !v.customer_id.is_empty() {
            self.customer(tenant, &v.customer_id).await?;
        }
        if !v.home_shop_id.is_empty() {
            self.shop(tenant, &v.home_shop_id).await?;
        }
        sqlx::query(
            "INSERT INTO vehicles (tenant_id, vin, customer_id, home_shop_id, make, model_year, plate)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant_id, vin) DO UPDATE SET customer_id = excluded.customer_id,
                 home_shop_id = excluded.home_shop_id, make = excluded.make,
                 model_year = excluded.model_year, plate = excluded.plate",
        )
        .bind(tenant)
        .bind(&vin)
        .bind(null_if_empty(&v.customer_id))
        .bind(null_if_empty(&v.home_shop_id))
        .bind(&v.make)
        .bind(num(v.model_year))
        .bind(&v.plate)
        .execute(&self.pool)
        .await?;
        self.vehicle(tenant, &vin).await
    }

    pub async fn vehicle(&self, tenant: &str, vin: &str) -> Result<VehicleRecord, DbError> {
        let r = sqlx::query(
            "SELECT vin, customer_id, home_shop_id, make, model_year, plate FROM vehicles
             WHERE tenant_id = $1 AND vin = $2",
        )
        .bind(tenant)
        .bind(vin)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("vehicle {vin:?}")))?;
        Ok(VehicleRecord {
            vin: text(&r, "vin")?,
            customer_id: text_or_empty(&r, "customer_id")?,
            home_shop_id: text_or_empty(&r, "home_shop_id")?,
            make: text(&r, "make")?,
            model_year: small(&r, "model_year")?,
            plate: text(&r, "plate")?,
        })
    }
}
