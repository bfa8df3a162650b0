import KerfCore
import XCTest
