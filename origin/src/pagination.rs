//! `?page=&page_size=` for every list that can grow, and the `{items, total, page, page_size,
//! pages}` envelope the reference's clients expect.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 100;
/// Far beyond any real list, and small enough that offsets stay exact.
pub const MAX_PAGE: u32 = 1_000_000;

#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// From 1 to 1 000 000; default 1.
    #[param(minimum = 1, maximum = 1000000)]
    pub page: Option<u32>,
    /// From 1 to 100; default 50.
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub page: u32,
    pub page_size: u32,
}

impl PageParams {
    pub fn validate(&self) -> Result<PageRequest> {
        let page = self.page.unwrap_or(1);
        let page_size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(Error::Validation(format!(
                "page must be between 1 and {MAX_PAGE}"
            )));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(Error::Validation(format!(
                "page_size must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        Ok(PageRequest { page, page_size })
    }
}

impl PageRequest {
    pub fn limit(self) -> i64 {
        i64::from(self.page_size)
    }

    pub fn offset(self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.page_size)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
    pub pages: i64,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, total: i64, request: PageRequest) -> Page<T> {
        let size = i64::from(request.page_size);
        Page {
            items,
            total,
            page: request.page,
            page_size: request.page_size,
            pages: (total + size - 1) / size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_validated_and_counted() {
        let request = PageParams {
            page: Some(3),
            page_size: Some(10),
        }
        .validate()
        .unwrap();
        assert_eq!((request.limit(), request.offset()), (10, 20));
        assert_eq!(Page::new(Vec::<()>::new(), 21, request).pages, 3);
        assert_eq!(Page::new(Vec::<()>::new(), 0, request).pages, 0);
        for page in [0, MAX_PAGE + 1] {
            assert!(
                PageParams {
                    page: Some(page),
                    page_size: None
                }
                .validate()
                .is_err()
            );
        }
        assert!(
            PageParams {
                page: None,
                page_size: Some(101)
            }
            .validate()
            .is_err()
        );
        assert!(
            PageParams {
                page: None,
                page_size: Some(0)
            }
            .validate()
            .is_err()
        );
    }
}
